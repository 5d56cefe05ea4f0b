package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
)

// hfFile is the part of tokenizer.json this package reads.
type hfFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
}

// warnLengthSettings logs, once per load, that the file's truncation and
// padding are not applied: packing decides sequence lengths (README, pack).
func warnLengthSettings(f *hfFile, name string) {
	for _, fld := range []struct {
		key string
		raw json.RawMessage
	}{{"truncation", f.Truncation}, {"padding", f.Padding}} {
		if len(fld.raw) != 0 && string(fld.raw) != "null" {
			slog.Warn("tokenizer.json field ignored: packing, not the tokenizer, decides sequence lengths",
				"tokenizer", name, "field", fld.key)
		}
	}
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	Special    bool   `json:"special"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
}

type typed struct {
	Type string `json:"type"`
}

func typeOf(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var t typed
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", err
	}
	return t.Type, nil
}

// HF is a tokenizer loaded from a Hugging Face tokenizer.json.
type HF struct {
	name      string
	added     []addedToken // sorted longest first for leftmost-longest matching
	first     [256]bool    // first bytes of added tokens
	addedID   map[string]int
	addedByID map[int]string
	special   map[int]bool
	vocab     int

	bpe *bpe
	wp  *wordPiece

	bertNorm *bertNormalizer
	template *template // post-processor for EncodeSpecial (nil: none)

	components []Component // the file's component types, for Describe

	cache   *pieceCache // per-instance pre-token cache (BPE)
	scratch []int32
}

// LoadFile loads a tokenizer.json from disk (at most MaxFileBytes).
func LoadFile(path string) (*HF, error) {
	data, err := readCapped(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Parse reads tokenizer.json bytes; name labels errors and Name(). Every id in
// the file is checked (see limits.go) before it sizes anything.
func Parse(data []byte, name string) (*HF, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("tokenizer %s: %d bytes, over the %d-byte limit for a tokenizer.json", name, len(data), MaxFileBytes)
	}
	if err := checkKeys(data); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	t := &HF{name: name, addedID: map[string]int{}, addedByID: map[int]string{}, special: map[int]bool{},
		cache: newPieceCache(cacheLimit)}
	warnLengthSettings(&f, name)
	t.components = componentsOf(&f)
	if err := t.setModel(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, sectionError(name, "normalizer", err)
	}
	if err := t.checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, sectionError(name, "pre_tokenizer", err)
	}
	if err := t.checkDecoder(f.Decoder); err != nil {
		return nil, sectionError(name, "decoder", err)
	}
	if err := t.setAddedTokens(f.AddedTokens); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	// After the added tokens: the post-processor's ids must name real tokens.
	if err := t.setPostProcessor(f.PostProcessor); err != nil {
		return nil, sectionError(name, "post_processor", err)
	}
	return t, nil
}

// sectionError wraps an error about one top-level field of the file: an
// ErrUnsupported error names its own JSON path already.
func sectionError(name, field string, err error) error {
	if errors.Is(err, ErrUnsupported) {
		return fmt.Errorf("tokenizer %s: %w", name, err)
	}
	return fmt.Errorf("tokenizer %s: %s: %w", name, field, err)
}

// setAddedTokens registers added_tokens with the ids the reference gives them:
// it adds them one by one after building the model
// (tokenizers/src/tokenizer/serialization.rs TokenizerVisitor::visit_map), and
// AddedVocabulary::add_tokens (added_vocabulary.rs) gives a content already
// added its earlier id, a content of the model its model id, and anything else
// the next id after both the model's entry count and the largest added id. The
// file's own id only draws a warning there; here a different id is an error,
// since our encoder would then disagree with the reference (and an id such as
// 2^31-2 would size the model's tables).
func (t *HF) setAddedTokens(list []addedToken) error {
	next := t.modelEntries()
	for i, a := range list {
		if a.SingleWord || a.LStrip || a.RStrip {
			return unsupported(fmt.Sprintf("added_tokens[%d] %q: single_word, lstrip or rstrip", i, a.Content), true, "false")
		}
		if a.Content == "" {
			continue // the reference ignores empty added tokens
		}
		want, why := t.referenceAddedID(a.Content, next)
		if want < 0 {
			return fmt.Errorf("added_tokens[%d] %q: %s", i, a.Content, why)
		}
		if want >= MaxTokenID {
			return fmt.Errorf("added_tokens[%d] %q: id %d beyond the limit of %d ids", i, a.Content, want, MaxTokenID)
		}
		if a.ID != want {
			return fmt.Errorf("added_tokens[%d] %q: id %d, but the reference tokenizers library gives it id %d (%s)",
				i, a.Content, a.ID, want, why)
		}
		if other, ok := t.addedByID[a.ID]; ok && other != a.Content {
			return fmt.Errorf("added_tokens[%d] %q: id %d already belongs to added token %q", i, a.Content, a.ID, other)
		}
		if _, seen := t.addedID[a.Content]; !seen {
			t.added = append(t.added, a)
		}
		t.addedID[a.Content] = a.ID
		t.addedByID[a.ID] = a.Content
		if a.Special {
			t.special[a.ID] = true
		}
		t.vocab = max(t.vocab, a.ID+1)
		next = max(next, a.ID+1)
	}
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].Content) > len(t.added[j].Content) })
	for _, a := range t.added {
		t.first[a.Content[0]] = true
	}
	return nil
}

// referenceAddedID is the id the reference gives added token content, next being
// its next free id, and why.
func (t *HF) referenceAddedID(content string, next int) (int, string) {
	if id, ok := t.addedID[content]; ok {
		return id, "its id earlier in added_tokens"
	}
	if id, ok := t.modelID(content); ok {
		return id, "its id in model.vocab"
	}
	if tok, ok := t.modelToken(next); ok {
		// Only a vocabulary with holes gets here: the reference would give two
		// tokens one id.
		return -1, fmt.Sprintf("the reference tokenizers library would give it id %d, which already belongs to model.vocab[%q]", next, tok)
	}
	return next, "the next id after model.vocab's entries and the added tokens before it"
}

// modelEntries is the model's entry count (the reference's get_vocab_size).
func (t *HF) modelEntries() int {
	if t.bpe != nil {
		return len(t.bpe.vocab)
	}
	return len(t.wp.vocab)
}

func (t *HF) modelID(tok string) (int, bool) {
	if t.bpe != nil {
		id, ok := t.bpe.vocab[tok]
		return id, ok
	}
	id, ok := t.wp.vocab[tok]
	return id, ok
}

// modelToken is the model's token with this id, if any (vocabularies may have holes).
func (t *HF) modelToken(id int) (string, bool) {
	if t.bpe != nil {
		if id >= 0 && id < len(t.bpe.idBytes) && t.bpe.idBytes[id] != nil {
			return t.bpe.idToTok[id], true
		}
		return "", false
	}
	if id >= 0 && id < len(t.wp.present) && t.wp.present[id] {
		return t.wp.idToTok[id], true
	}
	return "", false
}

// knownID reports whether id is a model or added token's id.
func (t *HF) knownID(id int) bool {
	if _, ok := t.modelToken(id); ok {
		return true
	}
	_, ok := t.addedByID[id]
	return ok
}

func (t *HF) setModel(raw json.RawMessage) error {
	var m struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
		Dropout                 *float64        `json:"dropout"`
		ByteFallback            bool            `json:"byte_fallback"`
	}
	// One pass over the (large) model; a model of another type may not even
	// decode into these fields, so its type is looked up only then.
	if err := json.Unmarshal(raw, &m); err != nil {
		if typ, terr := typeOf(raw); terr == nil && typ != "" && typ != "BPE" && typ != "WordPiece" {
			return unsupported("model.type", typ, "BPE, WordPiece")
		}
		return fmt.Errorf("model: %w", err)
	}
	if m.Type != "" && m.Type != "BPE" && m.Type != "WordPiece" {
		return unsupported("model.type", m.Type, "BPE, WordPiece")
	}
	if m.Type == "" && m.Merges == nil && m.ContinuingSubwordPrefix != nil {
		m.Type = "WordPiece" // older files omit the type
	}
	switch m.Type {
	case "BPE":
		return t.setBPE(m.Vocab, m.Merges, m.Dropout, m.ByteFallback, m.ContinuingSubwordPrefix, m.EndOfWordSuffix)
	case "WordPiece":
		return t.setWordPiece(m.Vocab, m.UnkToken, m.ContinuingSubwordPrefix, m.MaxInputCharsPerWord)
	}
	return unsupported("model.type", m.Type, "BPE, WordPiece")
}

func (t *HF) setBPE(vocab map[string]int, rawMerges json.RawMessage, dropout *float64, byteFallback bool, prefix, suffix *string) error {
	if dropout != nil && *dropout != 0 {
		return unsupported("model.dropout", *dropout, "null, 0")
	}
	if byteFallback {
		return unsupported("model.byte_fallback", true, "false")
	}
	if prefix != nil && *prefix != "" {
		return unsupported("model.continuing_subword_prefix", *prefix, `null, ""`)
	}
	if suffix != nil && *suffix != "" {
		return unsupported("model.end_of_word_suffix", *suffix, `null, ""`)
	}
	merges, err := parseMerges(rawMerges)
	if err != nil {
		return err
	}
	if t.bpe, err = newBPE(vocab, merges); err != nil {
		return err
	}
	t.vocab = len(t.bpe.idToTok)
	return nil
}

func (t *HF) setWordPiece(vocab map[string]int, unkToken, prefixField *string, maxCharsField *int) error {
	prefix, unk, maxChars := "##", "[UNK]", 100 // the reference's WordPiece defaults
	if prefixField != nil {
		prefix = *prefixField
	}
	if unkToken != nil {
		unk = *unkToken
	}
	if maxCharsField != nil {
		if *maxCharsField < 0 {
			return fmt.Errorf("model.max_input_chars_per_word: negative (%d)", *maxCharsField)
		}
		maxChars = *maxCharsField
	}
	wp, err := newWordPiece(vocab, unk, prefix, maxChars)
	if err != nil {
		return err
	}
	t.wp = wp
	t.vocab = len(wp.idToTok)
	return nil
}

// parseMerges accepts both merge encodings: "a b" strings and ["a", "b"] pairs.
// A string must hold exactly one space, as the reference's
// convert_merges_to_hashmap (tokenizers/src/models/bpe/model.rs) requires.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("model.merges: missing")
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err == nil {
		out := make([][2]string, len(asStrings))
		for i, s := range asStrings {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d] %q: not two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string // not [][2]string: Go would drop a third element or pad a short pair
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("model.merges: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: %d tokens, want a pair", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func (t *HF) setNormalizer(raw json.RawMessage) error {
	typ, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch typ {
	case "":
		return nil
	case "BertNormalizer":
		var n struct {
			CleanText          bool  `json:"clean_text"`
			HandleChineseChars bool  `json:"handle_chinese_chars"`
			StripAccents       *bool `json:"strip_accents"`
			Lowercase          bool  `json:"lowercase"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return err
		}
		strip := n.Lowercase
		if n.StripAccents != nil {
			strip = *n.StripAccents
		}
		t.bertNorm = &bertNormalizer{clean: n.CleanText, chinese: n.HandleChineseChars, stripAccents: strip, lowercase: n.Lowercase}
		return nil
	}
	return unsupported("normalizer.type", typ, "BertNormalizer, none")
}

func (t *HF) checkPreTokenizer(raw json.RawMessage) error {
	typ, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch {
	case typ == "ByteLevel" && t.bpe != nil:
		var p struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		if p.AddPrefixSpace {
			return unsupported("pre_tokenizer.add_prefix_space", true, "false")
		}
		if p.UseRegex != nil && !*p.UseRegex {
			return unsupported("pre_tokenizer.use_regex", false, "true")
		}
		return nil
	case typ == "BertPreTokenizer" && t.wp != nil:
		return nil
	}
	return unsupported("pre_tokenizer.type", typ, "ByteLevel for BPE, BertPreTokenizer for WordPiece")
}

func (t *HF) checkDecoder(raw json.RawMessage) error {
	typ, err := typeOf(raw)
	if err != nil {
		return err
	}
	switch {
	case typ == "ByteLevel" && t.bpe != nil, typ == "WordPiece" && t.wp != nil:
		if t.wp != nil {
			var d struct {
				Prefix  string `json:"prefix"`
				Cleanup *bool  `json:"cleanup"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
			}
			t.wp.decodeCleanup = d.Cleanup == nil || *d.Cleanup
		}
		return nil
	case typ == "" && t.bpe != nil:
		return unsupported("decoder", nil, "ByteLevel for a byte-level BPE")
	}
	return unsupported("decoder.type", typ, "ByteLevel for BPE, WordPiece for WordPiece")
}

// Name is the file name or built-in name.
func (t *HF) Name() string { return t.name }

// VocabSize counts the model's ids and added tokens.
func (t *HF) VocabSize() int { return t.vocab }

// TokenID returns the id of a vocabulary or added token.
func (t *HF) TokenID(tok string) (int, bool) {
	if id, ok := t.addedID[tok]; ok {
		return id, true
	}
	return t.modelID(tok)
}

// Clone returns a tokenizer sharing the model but with its own caches, for use
// on another goroutine.
func (t *HF) Clone() Tokenizer {
	c := *t
	c.cache = newPieceCache(cacheLimit)
	c.scratch = nil
	return &c
}

// Encode returns the ids of text (no post-processor specials).
func (t *HF) Encode(text string) []int {
	return t.AppendEncode(make([]int, 0, len(text)/4+8), text)
}

// AppendEncode appends the ids of text to out (Encode without the allocation).
func (t *HF) AppendEncode(out []int, text string) []int {
	t.forEachSegment(text, func(seg string, special int) {
		if special >= 0 {
			out = append(out, special)
			return
		}
		if t.bpe != nil {
			out = t.encodeByteLevel(seg, out)
		} else {
			out = t.encodeWordPiece(seg, out)
		}
	})
	return out
}

// EncodeSpecial applies the post-processor too (e.g. [CLS] ... [SEP] for BERT).
func (t *HF) EncodeSpecial(text string) []int {
	ids := t.Encode(text)
	if t.template == nil {
		return ids
	}
	return t.template.apply(ids)
}

// forEachSegment splits text on added tokens (leftmost, longest first) and calls
// fn for each plain segment (special = -1) and each added token (its id).
func (t *HF) forEachSegment(text string, fn func(seg string, special int)) {
	if len(t.added) == 0 {
		if text != "" {
			fn(text, -1)
		}
		return
	}
	start := 0
	for i := 0; i < len(text); {
		matched := false
		if t.first[text[i]] {
			for _, a := range t.added {
				if strings.HasPrefix(text[i:], a.Content) {
					if i > start {
						fn(text[start:i], -1)
					}
					fn(a.Content, a.ID)
					i += len(a.Content)
					start = i
					matched = true
					break
				}
			}
		}
		if !matched {
			i++
		}
	}
	if start < len(text) {
		fn(text[start:], -1)
	}
}

// cacheLimit bounds the pre-token cache of one encoder (entries).
const cacheLimit = 1 << 18

// encodeByteLevel pre-tokenizes with the GPT-2 regex and BPE-encodes each piece,
// caching pieces.
func (t *HF) encodeByteLevel(s string, out []int) []int {
	for i := 0; i < len(s); {
		j := nextPreToken(s, i)
		piece := s[i:j]
		if len(piece) == 1 {
			out = append(out, int(t.bpe.byteID[piece[0]]))
		} else if res, ok := t.cache.get(piece, out); ok {
			out = res
		} else {
			n := len(out)
			out, t.scratch = t.bpe.encodeWord(piece, out, t.scratch)
			t.cache.put(piece, out[n:])
		}
		i = j
	}
	return out
}

// Decode renders ids as text, special tokens included.
func (t *HF) Decode(ids []int) (string, error) {
	if t.bpe != nil {
		buf := make([]byte, 0, len(ids)*4)
		for _, id := range ids {
			if id >= 0 && id < len(t.bpe.idBytes) && t.bpe.idBytes[id] != nil {
				buf = append(buf, t.bpe.idBytes[id]...)
				continue
			}
			tok, ok := t.addedContent(id)
			if !ok {
				return "", fmt.Errorf("tokenizer %s: decode: id %d outside the vocabulary [0, %d)", t.name, id, t.vocab)
			}
			buf = append(buf, tok...)
		}
		return string(buf), nil
	}
	return t.decodeWordPiece(ids)
}

func (t *HF) addedContent(id int) (string, bool) {
	tok, ok := t.addedByID[id]
	return tok, ok
}
