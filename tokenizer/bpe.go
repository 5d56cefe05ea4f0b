package tokenizer

import (
	"fmt"
	"strings"
)

// bpe is a byte-level BPE model: the GPT-2 family.
type bpe struct {
	vocab   map[string]int
	idToTok []string
	byteID  [256]int32 // id of each single byte's token
	merges  pairTable  // (left id, right id) -> rank and result
	idBytes [][]byte   // the raw bytes each id decodes to
	maxRank int32
}

type mergeRule struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(vocab map[string]int, merges [][2]string) (*bpe, error) {
	maxID, err := checkVocabIDs(vocab)
	if err != nil {
		return nil, err
	}
	m := &bpe{vocab: vocab, merges: newPairTable(len(merges))}
	m.idToTok = make([]string, maxID+1)
	m.idBytes = make([][]byte, maxID+1)
	for tok, id := range vocab {
		m.idToTok[id] = tok
		m.idBytes[id] = tokenBytes(tok)
	}
	for b := 0; b < 256; b++ {
		id, ok := vocab[string(byteToRune[b])]
		if !ok {
			return nil, fmt.Errorf("model.vocab: no token for byte 0x%02x (%q): not a byte-level vocabulary", b, byteToRune[b])
		}
		m.byteID[b] = int32(id)
	}
	for rank, mg := range merges {
		c, err := mergeIDs(vocab, rank, mg)
		if err != nil {
			return nil, err
		}
		// A repeated pair takes the later rank, as the reference's merge map does
		// (tokenizers/src/models/bpe/model.rs BpeBuilder::build collects into a
		// hash map, so the last insert wins).
		m.merges.insert(pairKey(c[0], c[1]), mergeRule{rank: int32(rank), id: c[2]})
	}
	m.maxRank = int32(len(merges))
	return m, nil
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
// one missing from the vocabulary.
func mergeIDs(vocab map[string]int, rank int, mg [2]string) ([3]int32, error) {
	var ids [3]int32
	for i, tok := range [3]string{mg[0], mg[1], mg[0] + mg[1]} {
		id, ok := vocab[tok]
		if !ok {
			return ids, fmt.Errorf("model.merges[%d] %q: token %q not in model.vocab", rank, mg[0]+" "+mg[1], tok)
		}
		ids[i] = int32(id)
	}
	return ids, nil
}

// encodeWord appends the BPE ids of one pre-token (raw bytes) to out. It merges
// the lowest-ranked adjacent pair until none applies, like the reference BPE.
func (m *bpe) encodeWord(word string, out []int, scratch []int32) ([]int, []int32) {
	ids := scratch[:0]
	for i := 0; i < len(word); i++ {
		ids = append(ids, m.byteID[word[i]])
	}
	for len(ids) > 1 {
		best, at := mergeRule{rank: m.maxRank}, -1
		for i := 0; i+1 < len(ids); i++ {
			if r, ok := m.merges.get(pairKey(ids[i], ids[i+1])); ok && r.rank < best.rank {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		// Merge every occurrence of the best pair, left to right (same rank).
		a, b := ids[at], ids[at+1]
		w := at
		for r := at; r < len(ids); {
			if r+1 < len(ids) && ids[r] == a && ids[r+1] == b {
				ids[w] = best.id
				r += 2
			} else {
				ids[w] = ids[r]
				r++
			}
			w++
		}
		ids = ids[:w]
	}
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, ids
}

func (m *bpe) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "BPE(%d tokens, %d merges)", len(m.vocab), m.merges.n)
	return sb.String()
}

// pairTable is an open-addressing hash table from packed id pairs to merge rules:
// the BPE inner loop's only lookup, about twice as fast as a Go map here.
type pairTable struct {
	keys  []uint64 // 0 = empty (pair (0, 0) is stored with the high bit set)
	vals  []mergeRule
	shift uint
	n     int
}

const pairOccupied = 1 << 63

func newPairTable(n int) pairTable {
	size, shift := 1, uint(64)
	for size < 2*n+2 {
		size <<= 1
		shift--
	}
	return pairTable{keys: make([]uint64, size), vals: make([]mergeRule, size), shift: shift}
}

func (t *pairTable) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> t.shift }

func (t *pairTable) insert(k uint64, v mergeRule) {
	k |= pairOccupied
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case 0:
			t.keys[i], t.vals[i] = k, v
			t.n++
			return
		case k:
			t.vals[i] = v
			return
		}
	}
}

func (t *pairTable) get(k uint64) (mergeRule, bool) {
	k |= pairOccupied
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return mergeRule{}, false
		}
	}
}
