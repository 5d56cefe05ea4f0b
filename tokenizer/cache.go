package tokenizer

import "unsafe"

// pieceCache maps pre-tokens to their BPE ids without an allocation per entry:
// keys are copied into large byte chunks (never moved, so strings may point into
// them) and ids live in one growing arena.
type pieceCache struct {
	m     map[string]uint64 // key -> offset<<16 | length in ids
	ids   []int32
	chunk []byte
	limit int
}

const cacheChunk = 64 << 10

func newPieceCache(limit int) *pieceCache {
	return &pieceCache{m: make(map[string]uint64, 4096), limit: limit}
}

// get appends the cached ids of piece to out.
func (c *pieceCache) get(piece string, out []int) ([]int, bool) {
	v, ok := c.m[piece]
	if !ok {
		return out, false
	}
	for _, id := range c.ids[v>>16 : v>>16+v&0xffff] {
		out = append(out, int(id))
	}
	return out, true
}

// put stores ids for piece (pieces whose ids do not fit 16 bits of length, or a
// full cache, are simply not stored).
func (c *pieceCache) put(piece string, ids []int) {
	if len(c.m) >= c.limit || len(ids) > 0xffff || len(piece) > cacheChunk/4 {
		return
	}
	if len(c.chunk)+len(piece) > cap(c.chunk) {
		c.chunk = make([]byte, 0, cacheChunk)
	}
	start := len(c.chunk)
	c.chunk = append(c.chunk, piece...)
	key := unsafe.String(&c.chunk[start], len(piece))
	off := uint64(len(c.ids))
	for _, id := range ids {
		c.ids = append(c.ids, int32(id))
	}
	c.m[key] = off<<16 | uint64(len(ids))
}
