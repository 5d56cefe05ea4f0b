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
	tokens, scores, fast := fastUnigramVocab(rawVocab)
	n := len(tokens)
	var vocab [][2]json.RawMessage
	if !fast {
		if err := json.Unmarshal(rawVocab, &vocab); err != nil {
			return nil, fmt.Errorf("model.vocab: want [piece, score] pairs: %w", err)
		}
		n = len(vocab)
	}
	if n == 0 {
		return nil, fmt.Errorf("model.vocab: empty")
	}
	if n > MaxTokenID {
		return nil, fmt.Errorf("model.vocab: %d pieces, over the limit of %d ids", n, MaxTokenID)
	}
	if unkID == nil {
		return nil, fmt.Errorf("%w: model.unk_id null: the reference tokenizers library fails to encode any character outside the vocabulary (supported: an id)", ErrUnsupported)
	}
	if *unkID < 0 || *unkID >= n {
		return nil, fmt.Errorf("model.unk_id: %d outside the vocabulary's %d pieces", *unkID, n)
	}
	if !fast {
		var err error
		if tokens, scores, err = unigramEntries(vocab); err != nil {
			return nil, err
		}
	}
	u := &unigram{tokens: tokens, scores: scores, ids: make(map[string]int, n), unkID: *unkID, byteFallback: byteFallback}
	minScore := math.Inf(1)
	for i, tok := range tokens {
		u.ids[tok] = i // a repeated piece keeps its last id, as the reference's map does
		minScore = min(minScore, scores[i])
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

// unigramEntries decodes [piece, score] pairs with encoding/json: what decides
// any vocabulary fastUnigramVocab does not take, and the errors.
func unigramEntries(vocab [][2]json.RawMessage) (tokens []string, scores []float64, err error) {
	tokens, scores = make([]string, len(vocab)), make([]float64, len(vocab))
	for i, e := range vocab {
		if err := json.Unmarshal(e[0], &tokens[i]); err != nil {
			return nil, nil, fmt.Errorf("model.vocab[%d][0]: %w", i, err)
		}
		if err := json.Unmarshal(e[1], &scores[i]); err != nil {
			return nil, nil, fmt.Errorf("model.vocab[%d][1]: %w", i, err)
		}
	}
	return tokens, scores, nil
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
	b := newTrieBuilder(tokens)
	for _, tok := range tokens {
		if k := b.insert(tok); k != 0 {
			b.pieceID[k] = int32(ids[tok])
		}
	}
	return b.layout()
}

// trieBuilder holds the trie as it is built: each node's children as a list
// through sibling, in flat arrays (no slice per node), sized for the pieces.
type trieBuilder struct {
	rootKids [256]int32
	label    []byte  // per node, the byte on its edge from its parent
	firstKid []int32 // per node, its first child, 0 none
	sibling  []int32 // per node, the next child of its parent, 0 none
	pieceID  []int32 // per node, the piece's id or -1
}

func newTrieBuilder(tokens []string) *trieBuilder {
	nodes := 1 // at most one node per byte of the pieces, and the root
	for _, tok := range tokens {
		nodes += len(tok)
	}
	b := &trieBuilder{label: make([]byte, 1, nodes), firstKid: make([]int32, 1, nodes),
		sibling: make([]int32, 1, nodes), pieceID: make([]int32, 1, nodes)}
	b.pieceID[0] = -1
	return b
}

// insert adds tok's path and returns its last node (0 for the empty piece).
func (b *trieBuilder) insert(tok string) int32 {
	k := int32(0)
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		var nxt int32
		if k == 0 {
			nxt = b.rootKids[c]
		} else {
			for e := b.firstKid[k]; e != 0; e = b.sibling[e] {
				if b.label[e] == c {
					nxt = e
					break
				}
			}
		}
		if nxt == 0 {
			nxt = int32(len(b.label))
			b.label, b.firstKid, b.pieceID = append(b.label, c), append(b.firstKid, 0), append(b.pieceID, -1)
			if k == 0 {
				b.sibling = append(b.sibling, 0)
				b.rootKids[c] = nxt
			} else {
				b.sibling = append(b.sibling, b.firstKid[k])
				b.firstKid[k] = nxt
			}
		}
		k = nxt
	}
	return k
}

// layout lays the trie out breadth-first, each node's edges sorted by label.
func (b *trieBuilder) layout() uniTrie {
	n := len(b.label)
	t := uniTrie{first: make([]int32, 0, n+1), id: make([]int32, 0, n),
		labels: make([]byte, 0, n), child: make([]int32, 0, n)}
	order := make([]int32, 1, n) // breadth-first order of the builder's nodes
	var kids []int32
	for q := 0; q < len(order); q++ {
		old := order[q]
		t.first = append(t.first, int32(len(t.labels)))
		t.id = append(t.id, b.pieceID[old])
		kids = kids[:0]
		if old == 0 {
			for _, k := range b.rootKids {
				if k != 0 {
					kids = append(kids, k) // in byte order already
				}
			}
		} else {
			for e := b.firstKid[old]; e != 0; e = b.sibling[e] {
				kids = append(kids, e)
			}
			slices.SortFunc(kids, func(x, y int32) int { return int(b.label[x]) - int(b.label[y]) })
		}
		for _, k := range kids {
			t.labels = append(t.labels, b.label[k])
			t.child = append(t.child, int32(len(order)))
			order = append(order, k)
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
