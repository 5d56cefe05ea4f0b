package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// bertNormalizer is Hugging Face's BertNormalizer, in its order: clean_text,
// handle_chinese_chars, strip_accents (NFD, drop Mn), lowercase.
type bertNormalizer struct {
	clean, chinese, stripAccents, lowercase bool
}

func (n *bertNormalizer) normalize(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for _, r := range s {
		if n.clean {
			if r == 0 || r == 0xFFFD || isBertControl(r) {
				continue
			}
			if isBertWhitespace(r) {
				r = ' '
			}
		}
		if n.chinese && isCJK(r) {
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
			continue
		}
		sb.WriteRune(r)
	}
	out := sb.String()
	if n.stripAccents {
		out = stripMn(norm.NFD.String(out))
	}
	if n.lowercase {
		out = strings.ToLower(out)
	}
	return out
}

// appendNormalize is normalize writing into dst (appendNormalizer). ASCII
// text takes one pass: NFD and the nonspacing marks leave it as it is, and
// no ASCII character is CJK. Other text goes the full way, then is copied.
func (n *bertNormalizer) appendNormalize(dst []byte, s string) ([]byte, bool) {
	if !isASCII(s) {
		out := n.normalize(s)
		if out == s {
			return dst, false
		}
		return append(dst, out...), true
	}
	i := 0
	for i < len(s) && n.keepsASCII(s[i]) {
		i++
	}
	if i == len(s) {
		return dst, false
	}
	dst = growBytes(dst, len(s))
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if n.clean {
			if c == 0 || isBertControl(rune(c)) {
				continue
			}
			if isBertWhitespace(rune(c)) {
				c = ' '
			}
		}
		if n.lowercase && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}

// keepsASCII reports whether normalize leaves the ASCII byte c as it is.
func (n *bertNormalizer) keepsASCII(c byte) bool {
	if n.clean && (c < 0x20 || c == 0x7F) {
		return false // dropped, or a space
	}
	return !n.lowercase || c < 'A' || c > 'Z'
}

// stripMn drops the nonspacing marks of Unicode 8.0, the tables of the
// unicode_categories crate that BertNormalizer's strip_accents uses
// (tokenizers/src/normalizers/bert.rs).
func stripMn(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if r < 0x300 || !u8Mn.has(r) { // no mark below U+0300
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// isBertWhitespace is HF's is_whitespace: \t \n \r and the White_Space property.
func isBertWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isBertControl is HF's is_control (tokenizers/src/normalizers/bert.rs): the
// unicode_categories crate's is_other, Unicode 8.0 Cc, Cf and Co, other than
// \t \n \r. Unassigned code points are not in it: they are kept (and become
// [UNK]), issue 19 defect fixed by issue 22.
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if r < 0x80 {
		return r < 0x20 || r == 0x7F
	}
	return u8Other.has(r)
}

// isCJK is HF's is_chinese_char (tokenizers/src/normalizers/bert.rs): its
// fifth range starts at U+2B920, not at U+2B820 where the block does.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// isBertPunct is HF's is_bert_punc (tokenizers/src/pre_tokenizers/bert.rs):
// ASCII punctuation or the unicode_categories crate's is_punctuation, whose
// tables are Unicode 8.0.
func isBertPunct(r rune) bool {
	if r < 128 {
		return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126)
	}
	return u8Punct.has(r)
}

type wordPiece struct {
	vocab    map[string]int
	idToTok  []string
	present  []bool // ids that belong to a token (the vocabulary may have holes)
	unk      string
	unkID    int
	prefix   string
	maxChars int
}

func newWordPiece(vocab map[string]int, unk, prefix string, maxChars int) (*wordPiece, error) {
	maxID, err := checkVocabIDs(vocab)
	if err != nil {
		return nil, err
	}
	w := &wordPiece{vocab: vocab, unk: unk, prefix: prefix, maxChars: maxChars}
	id, ok := vocab[unk]
	if !ok {
		return nil, fmt.Errorf("model.unk_token %q not in model.vocab", unk)
	}
	w.unkID = id
	w.idToTok = make([]string, maxID+1)
	w.present = make([]bool, maxID+1)
	for tok, id := range vocab {
		w.idToTok[id] = tok
		w.present[id] = true
	}
	return w, nil
}

// encodeWord is greedy longest-match-first; a word with an unknown piece, or
// longer than maxChars characters, becomes [UNK].
func (w *wordPiece) encodeWord(word string, out []int) []int {
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(out, w.unkID)
	}
	n := len(out)
	var keyBuf [128]byte // "##" and a continuation, without an allocation per probe
	for start := 0; start < len(word); {
		end := len(word)
		found := -1
		for end > start {
			var id int
			var ok bool
			if start > 0 {
				key := append(append(keyBuf[:0], w.prefix...), word[start:end]...)
				id, ok = w.vocab[string(key)] // the conversion in a map index copies nothing
			} else {
				id, ok = w.vocab[word[start:end]]
			}
			if ok {
				found = id
				break
			}
			_, sz := utf8.DecodeLastRuneInString(word[start:end])
			end -= sz
		}
		if found < 0 {
			return append(out[:n], w.unkID)
		}
		out = append(out, found)
		start = end
	}
	return out
}

// encodeWordPiece splits normalized text on whitespace and punctuation
// (BertPreTokenizer), and WordPiece-encodes each word.
func (t *HF) encodeWordPiece(s string, out []int) []int {
	start := -1
	for i, r := range s {
		switch {
		case isBertWhitespace(r):
			if start >= 0 {
				out = t.wp.encodeWord(s[start:i], out)
				start = -1
			}
		case isBertPunct(r):
			if start >= 0 {
				out = t.wp.encodeWord(s[start:i], out)
				start = -1
			}
			out = t.wp.encodeWord(s[i:i+utf8.RuneLen(r)], out)
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		out = t.wp.encodeWord(s[start:], out)
	}
	return out
}

// cleanupDecoded is Hugging Face's clean_up_tokenization.
func cleanupDecoded(s string) string {
	r := strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't",
		" 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")
	return r.Replace(s)
}

// template is a TemplateProcessing / BertProcessing post-processor for single
// sequences: specials before and after the ids.
type template struct{ before, after []int }

func (p *template) apply(ids []int) []int {
	out := make([]int, 0, len(ids)+len(p.before)+len(p.after))
	out = append(out, p.before...)
	out = append(out, ids...)
	return append(out, p.after...)
}

func (t *HF) setPostProcessor(raw json.RawMessage) error {
	return t.setPostProcessorAt(raw, "post_processor", 0)
}

// setPostProcessorAt reads the post-processor at JSON path; a Sequence applies
// its processors in turn, each wrapping the ids the one before produced
// (tokenizers/src/processors/sequence.rs).
func (t *HF) setPostProcessorAt(raw json.RawMessage, path string, depth int) error {
	typ, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch typ {
	case "Sequence":
		if depth > maxComponentDepth {
			return fmt.Errorf("%s: Sequences nested deeper than %d", path, maxComponentDepth)
		}
		var seq struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &seq); err != nil {
			return err
		}
		all := &template{}
		for i, sub := range seq.Processors {
			t.template = nil
			if err := t.setPostProcessorAt(sub, fmt.Sprintf("%s.processors[%d]", path, i), depth+1); err != nil {
				return err
			}
			if t.template != nil {
				all.before = append(slices.Clone(t.template.before), all.before...)
				all.after = append(all.after, t.template.after...)
			}
		}
		t.template = all
		return nil
	case "", "ByteLevel":
		return nil // ByteLevel post-processing only trims offsets
	case "TemplateProcessing":
		var p struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		tp := &template{}
		seen := false
		for _, piece := range p.Single {
			switch {
			case piece.Sequence != nil:
				seen = true
			case piece.SpecialToken != nil:
				st, ok := p.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("TemplateProcessing: special token %q has no ids", piece.SpecialToken.ID)
				}
				for i, id := range st.IDs {
					if !t.knownID(id) {
						return fmt.Errorf("special_tokens[%q].ids[%d]: id %d is not in the vocabulary [0, %d)",
							piece.SpecialToken.ID, i, id, t.vocab)
					}
				}
				if seen {
					tp.after = append(tp.after, st.IDs...)
				} else {
					tp.before = append(tp.before, st.IDs...)
				}
			}
		}
		t.template = tp
		return nil
	case "BertProcessing", "RobertaProcessing": // the same for one sequence: cls, ids, sep
		var p struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		var cls, sep int
		if err := json.Unmarshal(p.Cls[1], &cls); err != nil {
			return err
		}
		if err := json.Unmarshal(p.Sep[1], &sep); err != nil {
			return err
		}
		for _, c := range []struct {
			field string
			id    int
		}{{"cls[1]", cls}, {"sep[1]", sep}} {
			if !t.knownID(c.id) {
				return fmt.Errorf("%s: id %d is not in the vocabulary [0, %d)", c.field, c.id, t.vocab)
			}
		}
		t.template = &template{before: []int{cls}, after: []int{sep}}
		return nil
	}
	return unsupported(path+".type", typ, "ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence, none")
}
