package tokenizer

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Batch chunking: workers claim runs of consecutive texts of about
// batchChunkBytes (at most batchChunkTexts texts), largest first, from an
// atomic counter, so a worker never waits on a channel per text and the last
// chunks are small enough that both cores finish together.
const (
	batchChunkBytes = 32 << 10
	batchChunkTexts = 256
)

// BatchEncode encodes texts on up to workers goroutines (0: GOMAXPROCS); the
// result equals Encode on each text. The workers share one pre-token cache
// (t's, which stays warm for later calls) and each has its own scratch. The
// ids of a chunk of texts live in one allocation: out[i] is a full slice
// (appending to it copies), and keeping any of them keeps its chunk's ids.
func BatchEncode(t Tokenizer, texts []string, workers int) [][]int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([][]int, len(texts))
	bounds := batchChunks(texts)
	chunks := len(bounds) - 1
	if workers = min(workers, chunks); workers <= 1 {
		w := batchWorker{enc: t}
		for c := 0; c < chunks; c++ {
			w.encodeChunk(texts[bounds[c]:bounds[c+1]], out[bounds[c]:bounds[c+1]])
		}
		return out
	}
	order := largestFirst(texts, bounds)
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, enc := range Workers(t, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := batchWorker{enc: enc}
			for k := int(next.Add(1)) - 1; k < chunks; k = int(next.Add(1)) - 1 {
				c := order[k]
				w.encodeChunk(texts[bounds[c]:bounds[c+1]], out[bounds[c]:bounds[c+1]])
			}
		}()
	}
	wg.Wait()
	return out
}

// Workers returns n encoders for n goroutines: clones of t that share its
// pre-token cache (safe for concurrent use) but not its scratch state, where t
// supports that, else clones with their own caches, else t itself n times
// (a tokenizer without Clone keeps no state).
func Workers(t Tokenizer, n int) []Tokenizer {
	encs := make([]Tokenizer, n)
	for i := range encs {
		switch c := t.(type) {
		case interface{ shareClone() Tokenizer }:
			encs[i] = c.shareClone()
		case interface{ Clone() Tokenizer }:
			encs[i] = c.Clone()
		default:
			encs[i] = t
		}
	}
	return encs
}

// batchChunks cuts texts into runs of about batchChunkBytes: chunk c is
// texts[b[c]:b[c+1]] for the returned b (len(b) >= 1; one chunk per text at
// most).
func batchChunks(texts []string) []int {
	bounds := []int{0}
	size, start := 0, 0
	for i, s := range texts {
		size += len(s)
		if size >= batchChunkBytes || i+1-start >= batchChunkTexts {
			bounds = append(bounds, i+1)
			size, start = 0, i+1
		}
	}
	if start < len(texts) {
		bounds = append(bounds, len(texts))
	}
	return bounds
}

// largestFirst orders the chunks by size, largest first (stable): a text far
// larger than a chunk is claimed early instead of leaving one worker busy
// with it at the end while the others wait.
func largestFirst(texts []string, bounds []int) []int {
	size := make([]int, len(bounds)-1)
	order := make([]int, len(size))
	for c := range size {
		order[c] = c
		for _, s := range texts[bounds[c]:bounds[c+1]] {
			size[c] += len(s)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return size[b] - size[a] })
	return order
}

// batchWorker is one goroutine's state in BatchEncode: its encoder and the
// scratch it reuses from chunk to chunk.
type batchWorker struct {
	enc  Tokenizer
	ids  []int // the chunk's ids, text after text
	ends []int // where each text's ids end in ids
}

// idsRoom is the room encodeChunk makes for the ids of a text of n bytes
// before encoding it: byte-level BPE and byte-fallback Unigram give at most
// one id per byte (plus a few around added tokens and prefixes), so a long
// text grows the scratch once instead of by a dozen copies; past 2 MiB of
// text, half of that (English gives about one id per four bytes) and append's
// growth beyond, so the scratch stays near the ids' size.
func idsRoom(n int) int {
	const full = 2 << 20
	if n <= full {
		return n + 16
	}
	return full + (n-full)/2 + 16
}

// encodeChunk encodes texts into out (same length) with one allocation for
// all their ids.
func (w *batchWorker) encodeChunk(texts []string, out [][]int) {
	w.ids, w.ends = w.ids[:0], w.ends[:0]
	app, ok := w.enc.(AppendEncoder)
	for _, s := range texts {
		w.ids = slices.Grow(w.ids, idsRoom(len(s)))
		if ok {
			w.ids = app.AppendEncode(w.ids, s)
		} else {
			w.ids = append(w.ids, w.enc.Encode(s)...)
		}
		w.ends = append(w.ends, len(w.ids))
	}
	arena := slices.Clone(w.ids) // not zeroed first, unlike make and copy
	start := 0
	for i, end := range w.ends {
		out[i] = arena[start:end:end]
		start = end
	}
	if cap(w.ids) > 4*batchChunkBytes { // one huge text: do not keep its scratch
		w.ids = nil
	}
}
