package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// unkPenalty is how much worse than the worst piece an unknown character
// scores (K_UNK_PENALTY, tokenizers/src/models/unigram/model.rs).
const unkPenalty = 10.0

// unigram is the Unigram model (SentencePiece): each pre-token is cut into the
// pieces whose scores sum highest (Viterbi, Unigram::encode_optimized), runs
// of unknown characters fused into one unk piece, which byte_fallback spells
// as <0xXX> pieces when the vocabulary has them all.
type unigram struct {
	tokens       []string  // id -> piece
	scores       []float64 // id -> score
	ids          map[string]int
	unkID        int
	byteFallback bool
	byteID       [256]int32 // id of <0xXX>, -1 if absent
	unkScore     float64
	trie         uniTrie
}

// newUnigram reads model.vocab ([[piece, score], ...]), model.unk_id and
// model.byte_fallback.
func newUnigram(rawVocab json.RawMessage, unkID *int, byteFallback bool) (*unigram, error) {
	var vocab [][2]json.RawMessage
	if err := json.Unmarshal(rawVocab, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: want [piece, score] pairs: %w", err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("model.vocab: empty")
	}
	if len(vocab) > MaxTokenID {
		return nil, fmt.Errorf("model.vocab: %d pieces, over the limit of %d ids", len(vocab), MaxTokenID)
	}
	if unkID == nil {
		return nil, fmt.Errorf("%w: model.unk_id null: the reference tokenizers library fails to encode any character outside the vocabulary (supported: an id)", ErrUnsupported)
	}
	if *unkID < 0 || *unkID >= len(vocab) {
		return nil, fmt.Errorf("model.unk_id: %d outside the vocabulary's %d pieces", *unkID, len(vocab))
	}
	u := &unigram{tokens: make([]string, len(vocab)), scores: make([]float64, len(vocab)),
		ids: make(map[string]int, len(vocab)), unkID: *unkID, byteFallback: byteFallback}
	minScore := math.Inf(1)
	for i, e := range vocab {
		if err := json.Unmarshal(e[0], &u.tokens[i]); err != nil {
			return nil, fmt.Errorf("model.vocab[%d][0]: %w", i, err)
		}
		if err := json.Unmarshal(e[1], &u.scores[i]); err != nil {
			return nil, fmt.Errorf("model.vocab[%d][1]: %w", i, err)
		}
		u.ids[u.tokens[i]] = i // a repeated piece keeps its last id, as the reference's map does
		minScore = min(minScore, u.scores[i])
	}
	u.unkScore = minScore - unkPenalty
	for b := range u.byteID {
		u.byteID[b] = -1
		if id, ok := u.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
			u.byteID[b] = int32(id)
		}
	}
	u.trie = buildUniTrie(u.tokens, u.ids)
	return u, nil
}

// uniState is one encoder's scratch space for Viterbi.
type uniState struct {
	score []float64
	start []int32 // -1: no path ends here yet
	id    []int32
}

// encode appends the ids of one pre-token to out.
func (u *unigram) encode(s string, out []int, st *uniState) []int {
	if s == "" {
		return out
	}
	n := len(s)
	st.score = growFloat(st.score, n+1)
	st.start = growInt32(st.start, n+1)
	st.id = growInt32(st.id, n+1)
	for i := range n + 1 {
		st.start[i] = -1 // score and id are set together with start
	}
	st.score[0] = 0
	tr := &u.trie
	for i := 0; i < n; {
		base := st.score[i]
		w := 1
		if s[i] >= utf8.RuneSelf {
			_, w = utf8.DecodeRuneInString(s[i:])
		}
		single := false
		// Each piece that s[i:end] is, shortest first (the trie's common
		// prefix search).
		for k, end := tr.root[s[i]], i+1; k != 0; end++ {
			if id := tr.id[k]; id >= 0 {
				cand := u.scores[id] + base
				if st.start[end] < 0 || cand > st.score[end] {
					st.score[end], st.start[end], st.id[end] = cand, int32(i), id
				}
				single = single || end-i == w
			}
			if end == n {
				break
			}
			k = tr.step(k, s[end])
		}
		if !single {
			end := i + w
			cand := u.unkScore + base
			if st.start[end] < 0 || cand > st.score[end] {
				st.score[end], st.start[end], st.id[end] = cand, int32(i), int32(u.unkID)
			}
		}
		i += w
	}
	return u.backtrack(s, out, st)
}

// backtrack walks the best path from the end, fusing runs of unk pieces, and
// appends the pieces' ids in order (Unigram::tokenize).
func (u *unigram) backtrack(s string, out []int, st *uniState) []int {
	first := len(out)
	unkEnd := -1 // end of the unk run being fused, -1 none
	for end := len(s); end > 0; {
		start, id := int(st.start[end]), int(st.id[end])
		if id == u.unkID {
			if unkEnd < 0 {
				unkEnd = end
			}
		} else {
			if unkEnd >= 0 {
				out = u.appendPieceRev(out, s[end:unkEnd])
				unkEnd = -1
			}
			out = append(out, id)
		}
		end = start
	}
	if unkEnd >= 0 {
		out = u.appendPieceRev(out, s[:unkEnd])
	}
	for i, j := first, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// appendPieceRev appends, in reverse order, the ids of a fused piece: its own
// id if it is in the vocabulary, else its bytes' <0xXX> ids (byte_fallback,
// when all are there), else unk.
func (u *unigram) appendPieceRev(out []int, piece string) []int {
	if id, ok := u.ids[piece]; ok {
		return append(out, id)
	}
	if u.byteFallback {
		all := true
		for i := 0; i < len(piece) && all; i++ {
			all = u.byteID[piece[i]] >= 0
		}
		if all {
			for i := len(piece) - 1; i >= 0; i-- {
				out = append(out, int(u.byteID[piece[i]]))
			}
			return out
		}
	}
	return append(out, u.unkID)
}

func growFloat(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

func growInt32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// uniTrie is a byte trie over the pieces: node k's children are the edges
// first[k]..first[k+1] (labels sorted), the root's found through a table.
type uniTrie struct {
	root   [256]int32 // child of the root per byte, 0 none
	first  []int32    // per node, its first edge; len(nodes)+1
	labels []byte     // per edge
	child  []int32    // per edge
	id     []int32    // per node, the piece's id or -1
}

// buildUniTrie builds the trie from the pieces (id of a piece: ids, which
// keeps the last of repeated pieces), then lays it out breadth-first so each
// node's edges are contiguous and sorted.
func buildUniTrie(tokens []string, ids map[string]int) uniTrie {
	type kid struct {
		c    byte
		node int32
	}
	var rootKids [256]int32
	kids := [][]kid{nil}
	pieceID := []int32{-1}
	for _, tok := range tokens {
		k := int32(0)
		for i := 0; i < len(tok); i++ {
			nxt := int32(0)
			if k == 0 {
				nxt = rootKids[tok[i]]
			} else {
				for _, e := range kids[k] {
					if e.c == tok[i] {
						nxt = e.node
						break
					}
				}
			}
			if nxt == 0 {
				nxt = int32(len(kids))
				kids, pieceID = append(kids, nil), append(pieceID, -1)
				if k == 0 {
					rootKids[tok[i]] = nxt
				} else {
					kids[k] = append(kids[k], kid{tok[i], nxt})
				}
			}
			k = nxt
		}
		if k != 0 {
			pieceID[k] = int32(ids[tok])
		}
	}
	for b, n := range rootKids {
		if n != 0 {
			kids[0] = append(kids[0], kid{byte(b), n})
		}
	}
	var t uniTrie
	index := make([]int32, len(kids)) // old node -> breadth-first position
	order := []int32{0}
	for q := 0; q < len(order); q++ {
		old := order[q]
		t.first = append(t.first, int32(len(t.labels)))
		t.id = append(t.id, pieceID[old])
		ks := kids[old]
		slices.SortFunc(ks, func(a, b kid) int { return int(a.c) - int(b.c) })
		for _, e := range ks {
			index[e.node] = int32(len(order))
			order = append(order, e.node)
			t.labels = append(t.labels, e.c)
			t.child = append(t.child, index[e.node])
		}
	}
	t.first = append(t.first, int32(len(t.labels)))
	for e := t.first[0]; e < t.first[1]; e++ {
		t.root[t.labels[e]] = t.child[e]
	}
	return t
}

// step follows the edge labelled c from node k (0: none).
func (t *uniTrie) step(k int32, c byte) int32 {
	lo, end := t.first[k], t.first[k+1]
	for hi := end; hi-lo > 8; {
		mid := (lo + hi) / 2
		if t.labels[mid] < c {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	for e := lo; e < end && t.labels[e] <= c; e++ {
		if t.labels[e] == c {
			return t.child[e]
		}
	}
	return 0
}
