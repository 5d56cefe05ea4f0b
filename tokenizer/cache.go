package tokenizer

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

// pieceCache maps pre-tokens to their model ids. It is safe for concurrent use
// and takes no lock on the way of a lookup or a store, so the clones
// BatchEncode gives its workers share one cache: a piece is encoded once, not
// once per worker, and the workers never wait for each other.
//
// Each piece is one record in a 64 KB chunk: a 4-byte header (key length,
// number of ids), the key, padding to 4 bytes, the ids as int32. A slot of the
// open-addressing table (linear probing, kept about half full, every probe
// sequence bounded by cacheMaxProbe) is one word: the high 32 bits of the
// piece's hash, which also pick its slot, the chunk and the record's offset. A
// lookup reads the slot and, when the hash bits agree, the record: two cache
// misses, and no pointer in either for the garbage collector to follow.
//
// A writer (one cacheWriter per goroutine) appends records to a chunk of its
// own and publishes a record by a compare-and-swap of an empty slot; records
// never change afterwards. Writers count what they stored in batches, and the
// one whose batch takes the table past half full copies it into one twice the
// size and publishes that. A store that lands in the old table during the copy
// is lost, and a reader still probing the old table may miss a piece: either
// way the piece is encoded again, never wrongly.
type pieceCache struct {
	// Read by every lookup, written rarely.
	table  atomic.Pointer[cacheTable]
	seed   maphash.Seed
	limit  int64 // entries
	chunks [cacheMaxChunks]atomic.Pointer[[cacheChunk]byte]
	_      [128]byte // keeps the counters below off the readers' cache lines

	nchunks atomic.Int64 // chunks handed to writers
	entries atomic.Int64 // entries stored, counted in batches of cacheCountBatch
	growing sync.Mutex   // held by the writer copying the table
}

// cacheWriter is one goroutine's writing state in a pieceCache: the chunk it
// appends records to and the entries it stored but has not counted yet.
type cacheWriter struct {
	chunk, used int // used: bytes of chunk taken; chunk < 0 before the first
	uncounted   int64
	// Written on every store: the padding keeps two workers' writers, made
	// one after the other (Workers), off each other's cache lines (and the
	// adjacent line the hardware prefetches with them).
	_ [128 - 3*8]byte
}

// cacheTable is one generation of the slot array (len a power of two).
type cacheTable struct {
	slots []atomic.Uint64
	mask  uint64
}

const (
	cacheChunk      = 64 << 10 // bytes per record chunk
	cacheMaxChunks  = 1024     // 64 MB of records at most per cache
	cacheFirstSize  = 1 << 12  // slots of a new cache's table
	cacheMaxSlots   = 1 << 21  // the largest table (16 MB)
	cacheMaxProbe   = 64       // slots a lookup or a store looks at, at most
	cacheCountBatch = 64       // entries a writer stores before counting them
	cacheHeader     = 4        // key length and id count, uint16 each
	// maxCachedIDs bounds the ids of one record (a record fits a chunk).
	maxCachedIDs = (cacheChunk - cacheHeader - maxCachedPiece - 3) / 4
)

func newPieceCache(limit int) *pieceCache {
	c := &pieceCache{seed: maphash.MakeSeed(), limit: int64(limit)}
	c.table.Store(newCacheTable(cacheFirstSize))
	return c
}

func newCacheWriter() *cacheWriter { return &cacheWriter{chunk: -1} }

func newCacheTable(size int) *cacheTable {
	return &cacheTable{slots: make([]atomic.Uint64, size), mask: uint64(size - 1)}
}

// slotWord packs a record's place with the high half of its piece's hash,
// which also picks the slot (so growing the table reads no record); never 0:
// chunk is stored plus one.
func slotWord(h uint64, chunk, off int) uint64 {
	return h&^0xffffffff | uint64(chunk+1)<<16 | uint64(off/4)
}

// record returns the key and ids of the record a slot word names.
func (c *pieceCache) record(w uint64) (string, []int32) {
	chunk := c.chunks[int(w>>16&0xffff)-1].Load()
	off := int(w&0xffff) * 4
	klen := int(binary.LittleEndian.Uint16(chunk[off:]))
	n := int(binary.LittleEndian.Uint16(chunk[off+2:]))
	// Records are never changed. An empty key or id list may end the chunk:
	// no element of it is addressed then.
	var key string
	if klen > 0 {
		key = unsafe.String(&chunk[off+cacheHeader], klen)
	}
	var ids []int32
	if n > 0 {
		ids = unsafe.Slice((*int32)(unsafe.Pointer(&chunk[alignUp(off+cacheHeader+klen)])), n)
	}
	return key, ids
}

func alignUp(n int) int { return (n + 3) &^ 3 }

// find returns the ids of piece (hash h) in tab.
func (c *pieceCache) find(tab *cacheTable, h uint64, piece string) ([]int32, bool) {
	i := h >> 32 & tab.mask
	for range cacheMaxProbe {
		w := tab.slots[i].Load()
		if w == 0 {
			return nil, false
		}
		if w>>32 == h>>32 {
			if key, ids := c.record(w); key == piece {
				return ids, true
			}
		}
		i = (i + 1) & tab.mask
	}
	return nil, false
}

// get appends the cached ids of piece to out.
func (c *pieceCache) get(piece string, out []int) ([]int, bool) {
	if piece == "" || len(piece) > maxCachedPiece { // never stored
		return out, false
	}
	ids, ok := c.find(c.table.Load(), maphash.String(c.seed, piece), piece)
	if !ok {
		return out, false
	}
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, true
}

// put stores ids for piece through writer w, unless the cache is full, the
// piece is empty or longer than maxCachedPiece, or it has more than
// maxCachedIDs ids.
func (c *pieceCache) put(w *cacheWriter, piece string, ids []int) {
	if piece == "" || len(piece) > maxCachedPiece || len(ids) > maxCachedIDs || c.entries.Load() >= c.limit {
		return
	}
	h := maphash.String(c.seed, piece)
	tab := c.table.Load()
	chunk, off, ok := c.writeRecord(w, piece, ids)
	if !ok {
		return
	}
	if !c.publish(tab, h, piece, slotWord(h, chunk, off)) {
		w.used = off // not published: the space is free again
		return
	}
	if w.uncounted++; w.uncounted == cacheCountBatch {
		n := c.entries.Add(w.uncounted)
		w.uncounted = 0
		if 2*n > int64(len(tab.slots)) {
			c.grow(tab)
		}
	}
}

// publish puts slot word sw (piece, hash h) in the first empty slot of its
// probe sequence; false when the piece is there already (another writer stored
// it) or the sequence has no empty slot.
func (c *pieceCache) publish(tab *cacheTable, h uint64, piece string, sw uint64) bool {
	i := h >> 32 & tab.mask
	for range cacheMaxProbe {
		w := tab.slots[i].Load()
		if w == 0 {
			if tab.slots[i].CompareAndSwap(0, sw) {
				return true
			}
			w = tab.slots[i].Load() // another writer took the slot: look at its piece
		}
		if w>>32 == h>>32 {
			if key, _ := c.record(w); key == piece {
				return false
			}
		}
		i = (i + 1) & tab.mask
	}
	return false
}

// writeRecord appends piece's record to w's chunk (or a new one) and returns
// where it is; false when every chunk is taken.
func (c *pieceCache) writeRecord(w *cacheWriter, piece string, ids []int) (chunk, off int, ok bool) {
	size := alignUp(cacheHeader+len(piece)) + 4*len(ids)
	if w.chunk < 0 || w.used+size > cacheChunk {
		n := c.nchunks.Add(1) - 1
		if n >= cacheMaxChunks {
			c.nchunks.Store(cacheMaxChunks) // stay full, never wrap
			return 0, 0, false
		}
		c.chunks[n].Store(new([cacheChunk]byte))
		w.chunk, w.used = int(n), 0
	}
	chunk, off = w.chunk, w.used
	buf := c.chunks[chunk].Load()[off : off+size]
	binary.LittleEndian.PutUint16(buf, uint16(len(piece)))
	binary.LittleEndian.PutUint16(buf[2:], uint16(len(ids)))
	copy(buf[cacheHeader:], piece)
	if len(ids) > 0 { // a piece may encode to no ids; its record ends at the key
		dst := unsafe.Slice((*int32)(unsafe.Pointer(&buf[alignUp(cacheHeader+len(piece))])), len(ids))
		for i, id := range ids {
			dst[i] = int32(id)
		}
	}
	w.used = off + size
	return chunk, off, true
}

// grow publishes a copy of tab twice its size, unless another writer is
// growing it or tab is the largest table.
func (c *pieceCache) grow(tab *cacheTable) {
	if len(tab.slots) >= cacheMaxSlots || !c.growing.TryLock() {
		return
	}
	defer c.growing.Unlock()
	if c.table.Load() != tab {
		return // grown already
	}
	next := newCacheTable(2 * len(tab.slots))
	for i := range tab.slots {
		if w := tab.slots[i].Load(); w != 0 {
			j := w >> 32 & next.mask
			for next.slots[j].Load() != 0 {
				j = (j + 1) & next.mask
			}
			next.slots[j].Store(w)
		}
	}
	c.table.Store(next)
}
