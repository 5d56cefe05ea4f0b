package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// hfFile is the part of tokenizer.json this package reads: each field's bytes
// as scanDocument found them in the file (nil when absent).
type hfFile struct {
	AddedTokens   []addedToken
	Normalizer    json.RawMessage
	PreTokenizer  json.RawMessage
	PostProcessor json.RawMessage
	Decoder       json.RawMessage
	Truncation    json.RawMessage
	Padding       json.RawMessage
	// ModelHead is the model's bytes, without its tables when it is an
	// object: Vocab and Merges then hold those.
	ModelHead     json.RawMessage
	Vocab, Merges json.RawMessage
}

// fileOf reads the small top-level fields of a scanned document.
func fileOf(doc *document) (*hfFile, error) {
	f := &hfFile{Normalizer: doc.top["normalizer"], PreTokenizer: doc.top["pre_tokenizer"],
		PostProcessor: doc.top["post_processor"], Decoder: doc.top["decoder"],
		Truncation: doc.top["truncation"], Padding: doc.top["padding"], ModelHead: doc.top["model"]}
	if doc.model != nil {
		f.ModelHead = modelHead(doc.model)
		f.Vocab, f.Merges = doc.model["vocab"], doc.model["merges"]
	}
	if raw := doc.top["added_tokens"]; raw != nil {
		if err := json.Unmarshal(raw, &f.AddedTokens); err != nil {
			return nil, fmt.Errorf("added_tokens: %w", err)
		}
	}
	return f, nil
}

// modelHead rebuilds the model object without its large tables, so that its
// settings decode without another pass over them.
func modelHead(fields map[string]json.RawMessage) json.RawMessage {
	head := json.RawMessage{'{'}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if bulkKeys[k] {
			continue
		}
		if len(head) > 1 {
			head = append(head, ',')
		}
		key, _ := json.Marshal(k) // a string always marshals
		head = append(append(append(head, key...), ':'), fields[k]...)
	}
	return append(head, '}')
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
	addedID   map[string]int
	addedByID map[int]string
	special   map[int]bool
	vocab     int

	bpe *bpe
	wp  *wordPiece
	uni *unigram
	wl  *wordLevel

	norm       normalizer      // nil: none
	normSteps  []normalizer    // norm's normalizers in order (normSteps)
	bertNorm   *bertNormalizer // the normalizer when it is a plain BertNormalizer
	pre        []preTokenizer
	byteMode   bool // ByteLevel is the last pre-tokenizer: the model reads bytes
	gpt2Fast   bool // exactly GPT-2's pipeline: encodeByteLevel
	bertFast   bool // exactly BERT's pipeline: encodeWordPiece
	decoders   []decoder
	hasDecode  bool      // the file has a decoder (without one, tokens are joined by spaces)
	byteDecode bool      // the decoder is ByteLevel alone: Decode's fast path
	template   *template // post-processor for EncodeSpecial (nil: none)

	addedNorm []addedToken // normalized added tokens, content normalized, longest first
	trie      *addedTrie   // over added
	trieNorm  *addedTrie   // over addedNorm
	strip     bool         // some added token has lstrip, rstrip or single_word

	components []Component // the file's component types, for Describe

	cache   *pieceCache  // pre-token cache: Clone's own, shared by shareClone's
	cw      *cacheWriter // this instance's writing state in cache
	scratch []int32
	uniSt   *uniState    // Viterbi scratch (Unigram), per instance
	out     []int        // the ids being appended to during AppendEncode
	encBuf  []int        // Encode's ids before their exact-size copy, per instance
	chain   func(piece)  // pre-tokenizers then the model, built per instance
	normBuf *normScratch // the normalizers' buffers, per instance
	// The fields above are written as this instance encodes: the padding keeps
	// them off the cache lines of the next object, another worker's clone.
	_ [128]byte
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
	doc, err := scanDocument(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	f, err := fileOf(doc)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	t := &HF{name: name, addedID: map[string]int{}, addedByID: map[int]string{}, special: map[int]bool{},
		cache: newPieceCache(cacheLimit), cw: newCacheWriter()}
	warnLengthSettings(f, name)
	t.components = componentsOf(f)
	if err := t.setModel(f); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	if err := t.setNormalizer(f.Normalizer); err != nil {
		return nil, sectionError(name, "normalizer", err)
	}
	if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
		return nil, sectionError(name, "pre_tokenizer", err)
	}
	if err := t.setDecoder(f.Decoder); err != nil {
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
			t.addAddedToken(a)
		}
		t.addedID[a.Content] = a.ID
		t.addedByID[a.ID] = a.Content
		if a.Special {
			t.special[a.ID] = true
		}
		t.vocab = max(t.vocab, a.ID+1)
		next = max(next, a.ID+1)
	}
	for _, list := range [][]addedToken{t.added, t.addedNorm} {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].Content) > len(list[j].Content) })
	}
	t.trie, t.trieNorm = newAddedTrie(t.added), newAddedTrie(t.addedNorm)
	return nil
}

// addAddedToken files a token under the raw-text or the normalized-text
// matcher. A normalized token is matched by its normalized content
// (AddedVocabulary::refresh_added_tokens), after the raw-text tokens
// (extract_and_normalize).
func (t *HF) addAddedToken(a addedToken) {
	if a.LStrip || a.RStrip || a.SingleWord {
		t.strip = true
	}
	if !a.Normalized {
		t.added = append(t.added, a)
		return
	}
	if t.norm != nil {
		a.Content = t.norm.normalize(a.Content)
	}
	if a.Content != "" {
		t.addedNorm = append(t.addedNorm, a)
	}
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
	switch {
	case t.bpe != nil:
		return len(t.bpe.vocab)
	case t.uni != nil:
		return len(t.uni.tokens)
	case t.wl != nil:
		return len(t.wl.vocab)
	}
	return len(t.wp.vocab)
}

func (t *HF) modelID(tok string) (int, bool) {
	var id int
	var ok bool
	switch {
	case t.bpe != nil:
		id, ok = t.bpe.vocab[tok]
	case t.uni != nil:
		id, ok = t.uni.ids[tok]
	case t.wl != nil:
		id, ok = t.wl.vocab[tok]
	default:
		id, ok = t.wp.vocab[tok]
	}
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
	if t.uni != nil {
		if id >= 0 && id < len(t.uni.tokens) {
			return t.uni.tokens[id], true
		}
		return "", false
	}
	if t.wl != nil {
		if id >= 0 && id < len(t.wl.present) && t.wl.present[id] {
			return t.wl.idToTok[id], true
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

func (t *HF) setModel(f *hfFile) error {
	var m struct {
		Type                    string          `json:"type"`
		Vocab                   json.RawMessage `json:"vocab"`
		UnkID                   *int            `json:"unk_id"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
		Dropout                 *float64        `json:"dropout"`
		ByteFallback            bool            `json:"byte_fallback"`
		FuseUnk                 bool            `json:"fuse_unk"`
		IgnoreMerges            bool            `json:"ignore_merges"`
	}
	// The settings without the (large) tables; a model of another type may not
	// even decode into these fields, so its type is looked up only then.
	if err := json.Unmarshal(f.ModelHead, &m); err != nil {
		if typ, terr := typeOf(f.ModelHead); terr == nil && typ != "" && !supportedModel(typ) {
			return unsupported("model.type", typ, supportedModels)
		}
		return fmt.Errorf("model: %w", err)
	}
	m.Vocab, m.Merges = f.Vocab, f.Merges // the head leaves them out
	if m.Type != "" && !supportedModel(m.Type) {
		return unsupported("model.type", m.Type, supportedModels)
	}
	if m.Type == "" && m.Merges == nil && m.ContinuingSubwordPrefix != nil {
		m.Type = "WordPiece" // older files omit the type
	}
	switch m.Type {
	case "Unigram":
		uni, err := newUnigram(m.Vocab, m.UnkID, m.ByteFallback)
		if err != nil {
			return err
		}
		t.uni, t.vocab = uni, len(uni.tokens)
		return nil
	case "WordLevel":
		wl, err := newWordLevel(m.Vocab, m.UnkToken)
		if err != nil {
			return err
		}
		t.wl, t.vocab = wl, len(wl.idToTok)
		return nil
	case "BPE":
		if m.Dropout != nil && *m.Dropout != 0 {
			return unsupported("model.dropout", *m.Dropout, "null, 0")
		}
		opt := bpeOptions{unk: m.UnkToken, fuseUnk: m.FuseUnk, byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges}
		if m.ContinuingSubwordPrefix != nil {
			opt.prefix = *m.ContinuingSubwordPrefix
		}
		if m.EndOfWordSuffix != nil {
			opt.suffix = *m.EndOfWordSuffix
		}
		return t.setBPE(m.Vocab, m.Merges, opt)
	case "WordPiece":
		return t.setWordPiece(m.Vocab, m.UnkToken, m.ContinuingSubwordPrefix, m.MaxInputCharsPerWord)
	}
	return unsupported("model.type", m.Type, supportedModels)
}

const supportedModels = "BPE, WordPiece, Unigram, WordLevel"

func supportedModel(typ string) bool {
	return typ == "BPE" || typ == "WordPiece" || typ == "Unigram" || typ == "WordLevel"
}

// vocabMap reads a token -> id model.vocab.
func vocabMap(raw json.RawMessage) (map[string]int, error) {
	if vocab, ok := fastVocab(raw); ok {
		return vocab, nil
	}
	var vocab map[string]int
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	return vocab, nil
}

func (t *HF) setBPE(rawVocab json.RawMessage, rawMerges json.RawMessage, opt bpeOptions) error {
	// The two tables are read at once (reading them is about a third of Gemma
	// 3's load); a vocabulary error is still the one reported first.
	var merges [][2]string
	var mergesErr error
	var wg sync.WaitGroup
	wg.Go(func() { merges, mergesErr = parseMerges(rawMerges) })
	vocab, err := vocabMap(rawVocab)
	wg.Wait()
	if err != nil {
		return err
	}
	if mergesErr != nil {
		return mergesErr
	}
	if t.bpe, err = newBPE(vocab, merges, opt); err != nil {
		return err
	}
	t.vocab = len(t.bpe.idToTok)
	return nil
}

func (t *HF) setWordPiece(rawVocab json.RawMessage, unkToken, prefixField *string, maxCharsField *int) error {
	vocab, err := vocabMap(rawVocab)
	if err != nil {
		return err
	}
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
	if out, ok := fastMerges(raw); ok {
		return out, nil
	}
	return slowMerges(raw)
}

// slowMerges reads merges with encoding/json: what decides any list
// fastMerges does not take, and the errors.
func slowMerges(raw json.RawMessage) ([][2]string, error) {
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
	n, err := parseNormalizer(raw, "normalizer", 0)
	if err != nil {
		return err
	}
	t.norm, t.normSteps = n, normSteps(n)
	t.bertNorm, _ = n.(*bertNormalizer) // the BERT fast path's, when it is the whole normalizer
	return nil
}

// setPreTokenizer reads the pre-tokenizers and decides how the model reads
// their pieces: as bytes when ByteLevel comes last (an earlier ByteLevel maps
// bytes to characters itself, since what follows it sees those characters).
func (t *HF) setPreTokenizer(raw json.RawMessage) error {
	pre, err := parsePreTokenizer(raw, "pre_tokenizer", 0)
	if err != nil {
		return err
	}
	t.pre = pre
	for i, p := range pre {
		if bl, ok := p.(*byteLevelPre); ok {
			if i == len(pre)-1 && t.bpe != nil {
				t.byteMode = true
			} else {
				bl.mapBytes = true
			}
		}
	}
	if len(pre) == 1 && t.bpe != nil && t.norm == nil && t.byteMode {
		bl := pre[0].(*byteLevelPre)
		t.gpt2Fast = bl.useRegex && !bl.prefixSpace && t.bpe.allBytes && !t.bpe.ignoreMerges
	}
	if len(pre) == 1 && t.wp != nil && (t.norm == nil || t.bertNorm != nil) {
		_, isFunc := pre[0].(funcPre)
		typ, _ := typeOf(raw)
		t.bertFast = isFunc && typ == "BertPreTokenizer"
	}
	return nil
}

func (t *HF) setDecoder(raw json.RawMessage) error {
	d, err := parseDecoder(raw, "decoder", 0)
	if err != nil {
		return err
	}
	t.decoders = d
	t.hasDecode = len(raw) != 0 && string(raw) != "null"
	typ, _ := typeOf(raw)
	t.byteDecode = typ == "ByteLevel"
	return nil
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
	c := t.instance()
	c.cache = newPieceCache(cacheLimit)
	return c
}

// shareClone is Clone sharing t's pre-token cache, which is safe for
// concurrent use (BatchEncode's workers, Workers).
func (t *HF) shareClone() Tokenizer {
	return t.instance()
}

// instance is a copy of t with its own per-instance encoding state (the
// fields after cache in HF), none of t's.
func (t *HF) instance() *HF {
	c := *t
	c.scratch, c.out, c.encBuf, c.chain, c.uniSt, c.cw, c.normBuf = nil, nil, nil, nil, nil, newCacheWriter(), nil
	return &c
}

// Encode returns the ids of text (no post-processor specials). A text of up
// to maxKeptEncodeIDs bytes is encoded into a buffer the instance keeps (room
// for one id a byte, as in BatchEncode) and returned as one exact-size copy:
// a guess at the count would regrow and copy on every text that beats it. A
// longer text gets a buffer of its own, sized by a guess and grown as needed.
func (t *HF) Encode(text string) []int {
	room := idsRoom(len(text))
	if room > maxKeptEncodeIDs {
		return t.AppendEncode(make([]int, 0, len(text)/4+8), text)
	}
	buf := t.AppendEncode(slices.Grow(t.encBuf[:0], room), text)
	ids := slices.Clone(buf)
	t.encBuf = nil
	if cap(buf) <= maxKeptEncodeIDs {
		t.encBuf = buf[:0]
	}
	return ids
}

// maxKeptEncodeIDs bounds the buffer Encode keeps between calls (ints).
const maxKeptEncodeIDs = 1 << 16

// AppendEncode appends the ids of text to out (Encode without the allocation):
// the added tokens matched in the raw text, then for the text between them the
// normalizer, the normalized added tokens, the pre-tokenizers and the model
// (TokenizerImpl::encode_single_sequence).
func (t *HF) AppendEncode(out []int, text string) []int {
	t.out = out
	t.splitAdded(t.added, t.trie, text, true, t.encodeSegment)
	out, t.out = t.out, nil
	return out
}

// encodeSegment encodes one stretch of text between raw-text added tokens (or
// one of them, special >= 0) onto t.out: the normalizer, the normalized added
// tokens, then the pre-tokenizers and the model.
func (t *HF) encodeSegment(seg string, special int, first bool) {
	if special >= 0 {
		t.out = append(t.out, special)
		return
	}
	if t.norm != nil {
		if t.normBuf == nil {
			t.normBuf = &normScratch{}
		}
		// seg lives in t.normBuf until the next segment: the model's cache
		// copies what it keeps.
		seg = t.normBuf.run(t.normSteps, seg)
	}
	t.splitAdded(t.addedNorm, t.trieNorm, seg, first, t.encodeText)
}

// encodeText encodes normalized text without added tokens (or one of them).
func (t *HF) encodeText(s string, special int, first bool) {
	switch {
	case special >= 0:
		t.out = append(t.out, special)
	case t.gpt2Fast:
		t.out = t.encodeByteLevel(s, t.out)
	case t.bertFast:
		t.out = t.encodeWordPiece(s, t.out)
	default:
		if t.chain == nil {
			t.chain = t.buildChain()
		}
		t.chain(piece{s: s, first: first})
	}
}

// buildChain composes the pre-tokenizers, each feeding the next, ending in the
// model.
func (t *HF) buildChain() func(piece) {
	f := t.encodePiece
	for i := len(t.pre) - 1; i >= 0; i-- {
		p, next := t.pre[i], f
		if m, ok := p.(*metaspacePre); ok {
			// A stage is called again only after its previous call returned
			// (its caller emits piece after piece), so one buffer per stage
			// of this instance's chain is never overwritten while in use.
			var buf []byte
			f = func(q piece) { m.splitBuf(&buf, q, next) }
			continue
		}
		if sp, ok := p.(*splitPre); ok {
			var buf []span // as above: one per stage
			f = func(q piece) { sp.splitBuf(&buf, q, next) }
			continue
		}
		f = func(q piece) { p.split(q, next) }
	}
	return f
}

// maxCachedPiece is the longest pre-token kept in the cache (the reference's
// BPE cache stops at 256 characters too, tokenizers/src/models/bpe/model.rs).
const maxCachedPiece = 256

// encodePiece appends the model's ids of one pre-token to t.out.
func (t *HF) encodePiece(p piece) {
	if p.s == "" {
		return
	}
	switch {
	case t.wp != nil:
		t.out = t.wp.encodeWord(p.s, t.out)
		return
	case t.wl != nil:
		t.out = t.wl.encode(p.s, t.out)
		return
	case t.uni != nil:
		t.encodeUnigram(p.s)
		return
	}
	if len(p.s) == 1 && t.byteMode && t.bpe.allBytes {
		t.out = append(t.out, int(t.bpe.byteID[p.s[0]]))
		return
	}
	if !t.byteMode && t.bpe.cuts {
		if t.bpe.ignoreMerges {
			if id, ok := t.bpe.vocab[p.s]; ok {
				t.out = append(t.out, id)
				return
			}
		}
		for i := 0; i < len(p.s); {
			j := t.bpe.partEnd(p.s, i)
			t.encodePart(p.s[i:j])
			i = j
		}
		return
	}
	t.encodePart(p.s)
}

// encodePart encodes a pre-token, or a part of one, through the cache.
func (t *HF) encodePart(s string) {
	p := piece{s: s}
	cacheable := len(p.s) <= maxCachedPiece
	if cacheable {
		if res, ok := t.cache.get(p.s, t.out); ok {
			t.out = res
			return
		}
	}
	n := len(t.out)
	if t.byteMode {
		t.out, t.scratch = t.bpe.encodeBytes(p.s, t.out, t.scratch)
	} else {
		t.out, t.scratch = t.bpe.encodeChars(p.s, t.out, t.scratch)
	}
	if cacheable {
		t.cache.put(t.cw, p.s, t.out[n:])
	}
}

// encodeUnigram encodes a pre-token with the Unigram model, through the cache.
func (t *HF) encodeUnigram(s string) {
	cacheable := len(s) <= maxCachedPiece
	if cacheable {
		if res, ok := t.cache.get(s, t.out); ok {
			t.out = res
			return
		}
	}
	if t.uniSt == nil {
		t.uniSt = &uniState{}
	}
	n := len(t.out)
	t.out = t.uni.encode(s, t.out, t.uniSt)
	if cacheable {
		t.cache.put(t.cw, s, t.out[n:])
	}
}

// EncodeSpecial applies the post-processor too (e.g. [CLS] ... [SEP] for BERT).
func (t *HF) EncodeSpecial(text string) []int {
	ids := t.Encode(text)
	if t.template == nil {
		return ids
	}
	return t.template.apply(ids)
}

// splitAdded splits text on the added tokens of list (leftmost match, longest
// first, as AddedVocabulary::find_matches with its LeftmostLongest automaton)
// and calls fn for each stretch of other text (special = -1, first: it starts
// at offset 0 of the input) and each added token (its id). A single_word token
// not standing alone is skipped; lstrip and rstrip take the whitespace beside
// a token into it.
func (t *HF) splitAdded(list []addedToken, trie *addedTrie, text string, first bool, fn func(seg string, special int, first bool)) {
	if len(list) == 0 {
		if text != "" {
			fn(text, -1, first)
		}
		return
	}
	start := 0
	for i := 0; i < len(text); {
		k, ok := trie.longest(text, i)
		if !ok {
			i++
			continue
		}
		a := list[k]
		mStart, mEnd := i, i+len(a.Content)
		if a.SingleWord && !standsAlone(text, mStart, mEnd) {
			i = mEnd // the automaton goes on after the discarded match
			continue
		}
		if a.LStrip {
			mStart = max(leftmostSpaceAtEnd(text[:mStart]), start)
		}
		if a.RStrip {
			mEnd += rightmostSpaceAtStart(text[mEnd:])
		}
		if mStart > start {
			fn(text[start:mStart], -1, first && start == 0)
		}
		fn(text[mStart:mEnd], a.ID, false)
		i, start = mEnd, mEnd
	}
	if start < len(text) {
		fn(text[start:], -1, first && start == 0)
	}
}

// standsAlone is single_word's test: no word character (Rust regex \w) right
// before or after the match.
func standsAlone(text string, a, b int) bool {
	if a > 0 {
		r, _ := utf8.DecodeLastRuneInString(text[:a])
		if isRustWord(r) {
			return false
		}
	}
	if b < len(text) {
		r, _ := utf8.DecodeRuneInString(text[b:])
		if isRustWord(r) {
			return false
		}
	}
	return true
}

// leftmostSpaceAtEnd is where the trailing whitespace of s starts.
func leftmostSpaceAtEnd(s string) int {
	return len(strings.TrimRightFunc(s, unicode.IsSpace))
}

// rightmostSpaceAtStart is the length of the leading whitespace of s.
func rightmostSpaceAtStart(s string) int {
	return len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
}

// cacheLimit bounds the entries of one pre-token cache (an encoder's, shared
// by its BatchEncode workers; up to cacheCountBatch more per writer).
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
			out, t.scratch = t.bpe.encodeBytes(piece, out, t.scratch)
			t.cache.put(t.cw, piece, out[n:])
		}
		i = j
	}
	return out
}

// Decode renders ids as text, special tokens included: each id's token (added
// tokens by their content) through the file's decoders, joined
// (TokenizerImpl::decode); without a decoder, tokens are joined by spaces.
func (t *HF) Decode(ids []int) (string, error) {
	if t.bpe != nil && t.byteDecode {
		buf := make([]byte, 0, len(ids)*4)
		for _, id := range ids {
			if tok, ok := t.addedContent(id); ok {
				buf = append(buf, tokenBytes(tok)...)
				continue
			}
			if id >= 0 && id < len(t.bpe.idBytes) && t.bpe.idBytes[id] != nil {
				buf = append(buf, t.bpe.idBytes[id]...)
				continue
			}
			return "", t.decodeRangeError(id)
		}
		return string(buf), nil
	}
	tokens := make([]string, len(ids))
	for i, id := range ids {
		tok, ok := t.addedContent(id)
		if !ok {
			if tok, ok = t.modelToken(id); !ok {
				return "", t.decodeRangeError(id)
			}
		}
		tokens[i] = tok
	}
	if !t.hasDecode {
		return strings.Join(tokens, " "), nil
	}
	for _, d := range t.decoders {
		tokens = d.decodeChain(tokens)
	}
	return strings.Join(tokens, ""), nil
}

func (t *HF) decodeRangeError(id int) error {
	return fmt.Errorf("tokenizer %s: decode: id %d outside the vocabulary [0, %d)", t.name, id, t.vocab)
}

func (t *HF) addedContent(id int) (string, bool) {
	tok, ok := t.addedByID[id]
	return tok, ok
}
