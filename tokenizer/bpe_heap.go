package tokenizer

// mergeHeap is merge for long words: a priority queue of candidate merges and
// a linked list of symbols, O(n log n) like Word::merge_all
// (tokenizers/src/models/bpe/word.rs), where Llama 2 and Gemma 3 words (whole
// texts: they are not split on spaces) would cost O(n^2) by rescanning.
func (m *bpe) mergeHeap(ids []int32) []int32 {
	n := len(ids)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range ids {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	h := mergeQueue(make([]queuedMerge, 0, n))
	for i := 0; i+1 < n; i++ {
		if r, ok := m.merges.get(pairKey(ids[i], ids[i+1])); ok {
			h.push(queuedMerge{rank: r.rank, pos: int32(i), id: r.id})
		}
	}
	for len(h) > 0 {
		top := h.pop()
		p := top.pos
		if !alive[p] || next[p] < 0 {
			continue
		}
		q := next[p]
		// A stale entry: the pair at p changed since it was queued.
		if r, ok := m.merges.get(pairKey(ids[p], ids[q])); !ok || r.id != top.id {
			continue
		}
		ids[p] = top.id
		alive[q] = false
		next[p] = next[q]
		if nq := next[q]; nq >= 0 {
			prev[nq] = p
		}
		if pp := prev[p]; pp >= 0 {
			if r, ok := m.merges.get(pairKey(ids[pp], ids[p])); ok {
				h.push(queuedMerge{rank: r.rank, pos: pp, id: r.id})
			}
		}
		if nx := next[p]; nx >= 0 {
			if r, ok := m.merges.get(pairKey(ids[p], ids[nx])); ok {
				h.push(queuedMerge{rank: r.rank, pos: p, id: r.id})
			}
		}
	}
	w := 0
	for i := 0; i >= 0 && i < n; i = int(next[i]) {
		ids[w] = ids[i]
		w++
	}
	return ids[:w]
}

type queuedMerge struct{ rank, pos, id int32 }

// mergeQueue is a binary min-heap by (rank, pos).
type mergeQueue []queuedMerge

func (q queuedMerge) less(o queuedMerge) bool {
	return q.rank < o.rank || (q.rank == o.rank && q.pos < o.pos)
}

func (h *mergeQueue) push(x queuedMerge) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeQueue) pop() queuedMerge {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[small]) {
			small = l
		}
		if r < len(s) && s[r].less(s[small]) {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}
