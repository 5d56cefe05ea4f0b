package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is the BPE model (tokenizers/src/models/bpe/model.rs): byte-level
// files (GPT-2, Llama 3, Qwen, DeepSeek) and SentencePiece-style files with
// byte_fallback (Llama 2, Gemma).
type bpe struct {
	vocab    map[string]int
	idToTok  []string
	byteID   [256]int32 // id of each single byte's byte-level token, -1 if none
	allBytes bool       // every byte has a token and there is no prefix or suffix
	merges   pairTable  // (left id, right id) -> rank and result
	idBytes  [][]byte   // the raw bytes each id decodes to under ByteLevel
	maxRank  int32

	unkID        int32 // -1: no unk_token
	fuseUnk      bool
	byteFallback bool
	fallbackID   [256]int32 // id of "<0xXX>", -1 if none
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	charID     []int32       // id of each BMP character's own token, -1 if none (nil with a prefix or suffix)
	cuts       bool          // long words may be cut into parts (bpe_split.go)
	noCutAfter map[rune]bool // characters a part may not end with
	noCutBMP   []uint64      // noCutAfter for the BMP as a bit set
}

// bpeOptions are the model's settings besides vocab and merges.
type bpeOptions struct {
	unk                   *string
	fuseUnk, byteFallback bool
	ignoreMerges          bool
	prefix, suffix        string
}

type mergeRule struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(vocab map[string]int, merges [][2]string, opt bpeOptions) (*bpe, error) {
	maxID, err := checkVocabIDs(vocab)
	if err != nil {
		return nil, err
	}
	m := &bpe{vocab: vocab, merges: newPairTable(len(merges)), unkID: -1, fuseUnk: opt.fuseUnk,
		byteFallback: opt.byteFallback, ignoreMerges: opt.ignoreMerges, prefix: opt.prefix, suffix: opt.suffix}
	m.allBytes = opt.prefix == "" && opt.suffix == ""
	for b := 0; b < 256; b++ {
		m.byteID[b], m.fallbackID[b] = -1, -1
		if id, ok := vocab[string(byteToRune[b])]; ok {
			m.byteID[b] = int32(id)
		} else {
			m.allBytes = false
		}
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallbackID[b] = int32(id)
		}
	}
	if opt.unk != nil {
		id, ok := vocab[*opt.unk]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q not in model.vocab", *opt.unk)
		}
		m.unkID = int32(id)
	}
	// The id-indexed tables and the merge table only read the vocabulary: built
	// at once, Gemma 3's file loads about 15% faster on 2 cores.
	var wg sync.WaitGroup
	wg.Go(func() { m.setIDTables(maxID) })
	err = m.setMerges(merges, len(opt.prefix))
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return m, nil
}

// setIDTables fills the tables indexed by id or character: idToTok, idBytes,
// charID and the part cuts.
func (m *bpe) setIDTables(maxID int) {
	m.idToTok = make([]string, maxID+1)
	m.idBytes = make([][]byte, maxID+1)
	for tok, id := range m.vocab {
		m.idToTok[id] = tok
		m.idBytes[id] = tokenBytes(tok)
	}
	if m.prefix == "" && m.suffix == "" {
		m.setCharIDs()
	}
	m.setPartCuts()
}

// setMerges fills the merge table; prefixLen is continuing_subword_prefix's.
func (m *bpe) setMerges(merges [][2]string, prefixLen int) error {
	rules := make([]pairSlot, len(merges))
	for rank, mg := range merges {
		c, err := mergeIDs(m.vocab, rank, mg, prefixLen)
		if err != nil {
			return err
		}
		rules[rank] = pairSlot{key: pairKey(c[0], c[1]), rule: mergeRule{rank: int32(rank), id: c[2]}}
	}
	// A repeated pair takes the later rank, as the reference's merge map does
	// (tokenizers/src/models/bpe/model.rs BpeBuilder::build collects into a
	// hash map, so the last insert wins): insertAll keeps rank order per key.
	m.merges.insertAll(rules)
	m.maxRank = int32(len(merges))
	return nil
}

// bmpSize is the number of code points charID and noCutBMP cover.
const bmpSize = 0x10000

// setCharIDs fills charID: the BPE loop looks up every character of a word,
// and an array read is several times cheaper than hashing a string into the
// vocabulary (Llama 2's '▁' alone is one lookup per word).
func (m *bpe) setCharIDs() {
	m.charID = make([]int32, bmpSize)
	for i := range m.charID {
		m.charID[i] = -1
	}
	for tok, id := range m.vocab {
		if r, w := utf8.DecodeRuneInString(tok); w == len(tok) && r < bmpSize && (r != utf8.RuneError || w > 1) {
			m.charID[r] = int32(id)
		}
	}
}

// charToken returns the id of s, the UTF-8 encoding of the one character r,
// when s is a token.
func (m *bpe) charToken(r rune, s string) (int32, bool) {
	if int(r) < len(m.charID) && (r != utf8.RuneError || len(s) > 1) {
		id := m.charID[r]
		return id, id >= 0
	}
	id, ok := m.vocab[s]
	return int32(id), ok
}

// tokenBytes is the bytes a vocabulary entry decodes to under the ByteLevel
// decoder (tokenizers/src/pre_tokenizers/byte_level.rs, Decoder::decode_chain):
// each character's byte, or, for an entry with a character outside the byte
// alphabet, the entry's own UTF-8 bytes. The encoder never produces such an
// entry (HF loads Cohere's and DeepSeek-V3's, which hold them; issue 22).
func tokenBytes(tok string) []byte {
	raw := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return []byte(tok)
		}
		raw = append(raw, b)
	}
	return raw
}

// mergeIDs looks up the left, right and merged tokens of merge rank, naming the
// one missing from the vocabulary. The merged token is the left one followed by
// the right one less its first prefixLen bytes (the continuing_subword_prefix),
// as BpeBuilder::build forms it.
func mergeIDs(vocab map[string]int, rank int, mg [2]string, prefixLen int) ([3]int32, error) {
	var ids [3]int32
	if len(mg[1]) < prefixLen {
		return ids, fmt.Errorf("model.merges[%d] %q: %q is shorter than continuing_subword_prefix", rank, mg[0]+" "+mg[1], mg[1])
	}
	var buf [64]byte // the merged token, without an allocation when it is short
	merged := append(append(buf[:0], mg[0]...), mg[1][prefixLen:]...)
	for i, tok := range mg {
		id, ok := vocab[tok]
		if !ok {
			return ids, mergeTokenMissing(rank, mg, tok)
		}
		ids[i] = int32(id)
	}
	id, ok := vocab[string(merged)]
	if !ok {
		return ids, mergeTokenMissing(rank, mg, string(merged))
	}
	ids[2] = int32(id)
	return ids, nil
}

func mergeTokenMissing(rank int, mg [2]string, tok string) error {
	return fmt.Errorf("model.merges[%d] %q: token %q not in model.vocab", rank, mg[0]+" "+mg[1], tok)
}

// encodeBytes appends the ids of one pre-token whose bytes stand for their
// byte-level characters (the ByteLevel pre-tokenizer ran last).
func (m *bpe) encodeBytes(word string, out []int, scratch []int32) ([]int, []int32) {
	if !m.allBytes {
		return m.encodeChars(byteLevelString(word), out, scratch)
	}
	if m.ignoreMerges && len(word) > 1 {
		var buf [256]byte
		if id, ok := m.vocab[string(appendByteLevel(buf[:0], word))]; ok {
			return append(out, id), scratch
		}
	}
	ids := scratch[:0]
	for i := 0; i < len(word); i++ {
		ids = append(ids, m.byteID[word[i]])
	}
	ids = m.merge(ids)
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, ids
}

func appendByteLevel(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteToRune[s[i]])
	}
	return dst
}

// encodeChars appends the ids of one pre-token, one symbol per character, as
// BPE::merge_word does: a character missing from the vocabulary becomes its
// <0xXX> byte tokens (byte_fallback) or unk_token (consecutive ones fused with
// fuse_unk), or is dropped when the model has neither.
func (m *bpe) encodeChars(word string, out []int, scratch []int32) ([]int, []int32) {
	if word == "" {
		return out, scratch
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id), scratch
		}
	}
	ids := scratch[:0]
	unk := int32(-1) // a pending unk symbol
	plain := m.prefix == "" && m.suffix == ""
	for i := 0; i < len(word); {
		if c := word[i]; plain && c < utf8.RuneSelf && m.charID[c] >= 0 {
			if unk >= 0 {
				ids = append(ids, unk)
				unk = -1
			}
			ids = append(ids, m.charID[c])
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(word[i:])
		s := word[i : i+w]
		var id int32
		var ok bool
		if plain {
			id, ok = m.charToken(r, s)
		} else {
			if i > 0 && m.prefix != "" {
				s = m.prefix + s
			}
			if i+w == len(word) && m.suffix != "" {
				s += m.suffix
			}
			var v int
			v, ok = m.vocab[s]
			id = int32(v)
		}
		i += w
		if ok {
			if unk >= 0 {
				ids = append(ids, unk)
				unk = -1
			}
			ids = append(ids, id)
			continue
		}
		if m.byteFallback && m.fallbackFor(s) {
			// The reference adds the byte tokens without flushing a pending unk.
			for j := 0; j < len(s); j++ {
				ids = append(ids, m.fallbackID[s[j]])
			}
			continue
		}
		if m.unkID >= 0 {
			if unk >= 0 && !m.fuseUnk {
				ids = append(ids, unk)
			}
			unk = m.unkID
		}
	}
	if unk >= 0 {
		ids = append(ids, unk)
	}
	ids = m.merge(ids)
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, ids
}

func (m *bpe) fallbackFor(s string) bool {
	for j := 0; j < len(s); j++ {
		if m.fallbackID[s[j]] < 0 {
			return false
		}
	}
	return true
}

// pairRule is the merge of (a, b), or a rule of rank maxRank when none.
func (m *bpe) pairRule(a, b int32) mergeRule {
	if r, ok := m.merges.get(pairKey(a, b)); ok {
		return r
	}
	return mergeRule{rank: m.maxRank}
}

// heapMergeMin is the length from which merge uses a heap instead of rescanning.
const heapMergeMin = 48

// merge applies the merges to a word's symbols: the lowest-ranked adjacent
// pair first, leftmost first among equals (Word::merge_all in
// tokenizers/src/models/bpe/word.rs). ids is modified and returned.
func (m *bpe) merge(ids []int32) []int32 {
	if len(ids) >= heapMergeMin {
		return m.mergeHeap(ids)
	}
	// The rank and result of each adjacent pair, kept up to date as symbols
	// merge: each step takes the lowest rank, leftmost among equals, merges that
	// one pair and looks up only the two pairs it changed.
	var buf [2 * heapMergeMin]mergeRule
	pairs := buf[:0]
	for i := 0; i+1 < len(ids); i++ {
		pairs = append(pairs, m.pairRule(ids[i], ids[i+1]))
	}
	for len(ids) > 1 {
		at, best := -1, m.maxRank
		for i, r := range pairs {
			if r.rank < best {
				at, best = i, r.rank
			}
		}
		if at < 0 {
			break
		}
		ids[at] = pairs[at].id
		ids = append(ids[:at+1], ids[at+2:]...)
		pairs = append(pairs[:at], pairs[at+1:]...)
		if at > 0 {
			pairs[at-1] = m.pairRule(ids[at-1], ids[at])
		}
		if at < len(pairs) {
			pairs[at] = m.pairRule(ids[at], ids[at+1])
		}
	}
	return ids
}

func (m *bpe) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "BPE(%d tokens, %d merges)", len(m.vocab), m.merges.n)
	return sb.String()
}

// pairTable is an open-addressing hash table from packed id pairs to merge rules:
// the BPE inner loop's only lookup, about twice as fast as a Go map here.
type pairTable struct {
	slots []pairSlot
	shift uint
	n     int
}

// pairSlot keeps a key beside its rule: a hit reads one cache line.
type pairSlot struct {
	key  uint64 // 0 = empty (pair (0, 0) is stored with the high bit set)
	rule mergeRule
}

const pairOccupied = 1 << 63

func newPairTable(n int) pairTable {
	size, shift := 1, uint(64)
	for size < 2*n+2 {
		size <<= 1
		shift--
	}
	return pairTable{slots: make([]pairSlot, size), shift: shift}
}

func (t *pairTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

func (t *pairTable) insert(k uint64, v mergeRule) {
	k |= pairOccupied
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.slots[i].key {
		case 0:
			t.slots[i] = pairSlot{key: k, rule: v}
			t.n++
			return
		case k:
			t.slots[i].rule = v
			return
		}
	}
}

// insertAll inserts the entries in the order of their home slots, a stable
// radix sort, so a repeated key's later entry still wins: the table, far
// larger than the caches for a large vocabulary, is written front to back
// instead of at random.
func (t *pairTable) insertAll(entries []pairSlot) {
	const digit = 11
	bits := 64 - int(t.shift)
	from, to := entries, make([]pairSlot, len(entries))
	for lo := 0; lo < bits; lo += digit {
		var count [1 << digit]int
		for _, e := range from {
			count[t.slot(e.key|pairOccupied)>>lo&(1<<digit-1)]++
		}
		sum := 0
		for d, c := range count {
			count[d], sum = sum, sum+c
		}
		for _, e := range from {
			d := t.slot(e.key|pairOccupied) >> lo & (1<<digit - 1)
			to[count[d]] = e
			count[d]++
		}
		from, to = to, from
	}
	for _, e := range from {
		t.insert(e.key, e.rule)
	}
}

func (t *pairTable) get(k uint64) (mergeRule, bool) {
	k |= pairOccupied
	mask := uint64(len(t.slots) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch sl := &t.slots[i]; sl.key {
		case k:
			return sl.rule, true
		case 0:
			return mergeRule{}, false
		}
	}
}
