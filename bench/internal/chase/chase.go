// Package chase holds the pointer chase the benchmarks use to measure memory
// latency: a buffer whose cache lines link into one random cycle, so every
// load depends on the one before and the prefetcher cannot guess the next.
// bench/corelat times it over buffers of growing size; tokbench's memory
// control times it on 1 and 2 goroutines in its scaling rounds.
package chase

// LineWords is the uint32s in a 64-byte cache line.
const LineWords = 16

// RandomCycle returns a buffer of size bytes whose first word on each cache
// line holds the index of the next line's first word, the lines in one random
// cycle (xorshift from seed).
func RandomCycle(size int, seed uint64) []uint32 {
	lines := max(2, size/4/LineWords)
	buf := make([]uint32, lines*LineWords)
	order := make([]int, lines)
	for i := range order {
		order[i] = i
	}
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := lines - 1; i > 0; i-- {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		j := int(x % uint64(i+1))
		order[i], order[j] = order[j], order[i]
	}
	for k, line := range order {
		buf[line*LineWords] = uint32(order[(k+1)%lines] * LineWords)
	}
	return buf
}

// Start is where the k-th of n walkers over buf begins: the first word of a
// line k/n of the way through the buffer, a point of the cycle unrelated to
// the others' (the cycle's order is random), so walkers sharing one buffer do
// not follow each other through the same lines.
func Start(buf []uint32, k, n int) uint32 {
	lines := len(buf) / LineWords
	return uint32(k * lines / n * LineWords)
}

// Walk follows n links from index from and returns where it ended.
func Walk(buf []uint32, from uint32, n int) uint32 {
	i := from
	for range n {
		i = buf[i]
	}
	return i
}
