package datasets

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// maxPageBytes bounds a page's uncompressed size, as arrow-go's reader
// bounds it by default (256 MiB): parquet-go allocates what a header claims
// before it decompresses.
const maxPageBytes = 256 << 20

// maxPageValues bounds the values (and rows) a page header may claim:
// parquet-go allocates per claimed value (offsets for byte arrays, decoded
// values for other encodings) before decoding. Writers cut pages at about a
// megabyte; 2^25 values is a page of a million rows many times over.
const maxPageValues = 1 << 25

// errPageClaim: a page header claims more bytes than its column chunk holds,
// more than maxPageBytes uncompressed, or more than maxPageValues values.
var errPageClaim = errors.New("a page header claims more than the file can hold")

// pageGuard is the io.ReaderAt parquet-go reads a file through. parquet-go
// allocates a page's compressed size, as its header claims, before it reads
// the page, its uncompressed size before it decompresses it, and per claimed
// value before it decodes it: gigabytes for a damaged or hostile header. The
// guard parses each page header of every column chunk as parquet-go's reads
// reach it (they run in order through each chunk, but for the row reader's
// seek to the first data page, up to which the guard walks the headers) and
// fails the read that would hand parquet-go a header whose page overruns its
// chunk, decompresses to more than maxPageBytes or holds more than
// maxPageValues values, or a page whose data decompresses to more than its
// header states or holds fewer fixed-width values than its levels define
// (checkBody). It serves parquet-go the bytes it has read itself (the footer,
// a page's body) from memory.
type pageGuard struct {
	r io.ReaderAt

	mu      sync.Mutex
	chunks  []guardedChunk // by start
	reach   []int64        // reach[i]: the largest end of chunks[:i+1]
	scratch []byte         // checkBody's decoding buffer
	body    []byte         // checkBody's buffer of a page's stored bytes
	held    []byte         // bytes of the file at heldAt, served from memory (hold)
	heldAt  int64
}

// guardedChunk is one column chunk's byte range, where its footer says its
// first data page starts, the offset of the next page header not yet checked,
// its compression codec, the values its footer states, the rows of its row
// group, and what its data pages checked so far claim.
type guardedChunk struct {
	start, end, data, next int64
	codec                  format.CompressionCodec
	leaf                   leafShape
	values, rows           int64
	seen                   pageClaims
}

// pageClaims is what data pages claim: values (nulls included), and the
// rows and count of those of version 2 (a version 1 page states no rows).
type pageClaims struct{ values, rowsV2, v1, v2 int64 }

func (a *pageClaims) add(b pageClaims) {
	a.values, a.rowsV2, a.v1, a.v2 = a.values+b.values, a.rowsV2+b.rowsV2, a.v1+b.v1, a.v2+b.v2
}

// complete checks what the data pages of c claimed, once all were checked,
// against its footer: parquet-go decodes what a page holds, whatever its
// header claims, and its row reader fills rows its pages lack with zero values
// (FuzzScanText input b8994c91db065790: 24 values claimed in a chunk of 2;
// FuzzReadDocsParquet input dbab593682afd3b9: pages v2 of 24 rows each in row
// groups of 3 and 2).
func (c *guardedChunk) complete() error {
	if c.seen.values != c.values {
		return fmt.Errorf("the data pages of the column chunk at byte %d claim %d values, its footer %d", c.start, c.seen.values, c.values)
	}
	if c.seen.v1 == 0 && c.seen.v2 > 0 && c.seen.rowsV2 != c.rows {
		return fmt.Errorf("the data pages of the column chunk at byte %d claim %d rows, its row group %d", c.start, c.seen.rowsV2, c.rows)
	}
	return nil
}

// guard starts checking the column chunks of md (parquet-go opened the file
// through g), each as guardChunk admits it; shapes are its leaf columns' (by
// column index; a column without one has its values uncounted).
func (g *pageGuard) guard(md *format.FileMetaData, size int64, shapes map[int]leafShape) error {
	var chunks []guardedChunk
	for i, rg := range md.RowGroups {
		for j, c := range rg.Columns {
			gc, err := guardChunk(c.MetaData, md.RowGroups[0].Columns, j, size)
			if err != nil {
				return fmt.Errorf("row group %d, column %d: %w", i, j, err)
			}
			gc.rows, gc.leaf = rg.NumRows, shapes[j]
			chunks = append(chunks, gc)
		}
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].start < chunks[j].start })
	reach := make([]int64, len(chunks))
	for i, c := range chunks {
		reach[i] = c.end
		if i > 0 {
			reach[i] = max(c.end, reach[i-1])
		}
	}
	g.mu.Lock()
	g.chunks, g.reach = chunks, reach
	g.mu.Unlock()
	return nil
}

// guardChunk is the guarded byte range of column j's chunk described by m
// (first: the columns of row group 0; size: the file's). A chunk starts where
// parquet-go starts reading it: at its dictionary page when it has one, else
// at its first data page. It is refused when:
//   - its codec or physical type is one Parquet does not define (parquet-go
//     read such files where its row reader misread them: FuzzScanText input
//     66dad09eb7b3ab95, FuzzReadDocsParquet input a60fe841830b2974, now
//     refused for their footers' encoding; arrow-go refuses them), or its
//     codec differs from row group 0's (parquet-go decodes every chunk of a
//     column with that one);
//   - its first data page is stated outside the file or past the chunk's end
//     (parquet-go's row reader seeks it and reads zero values there, where a
//     reader of pages reads on from the dictionary: FuzzReadDocsParquet input
//     c8002b1e42c3d694), or its dictionary page (0: none) is not before it
//     (FuzzScanText's regression inputs 1641e20e85511b51: -320, and
//     e6c3ee27730cc766: 28, after the dictionary).
func guardChunk(m format.ColumnMetaData, first []format.ColumnChunk, j int, size int64) (guardedChunk, error) {
	const magic = 4 // no page before the file's leading magic
	if k := m.Codec; k < format.Uncompressed || k > format.Lz4Raw {
		return guardedChunk{}, fmt.Errorf("compression codec %d, which Parquet does not define", k)
	}
	if t := m.Type; t < format.Boolean || t > format.FixedLenByteArray {
		return guardedChunk{}, fmt.Errorf("physical type %d, which Parquet does not define", t)
	}
	if j >= len(first) {
		return guardedChunk{}, fmt.Errorf("row group 0 has only %d columns", len(first))
	}
	if m.Codec != first[j].MetaData.Codec {
		return guardedChunk{}, fmt.Errorf("compressed with %s, where row group 0 uses %s: the reader decodes a column with one codec", m.Codec, first[j].MetaData.Codec)
	}
	data := m.DataPageOffset
	if data < magic || data >= size {
		return guardedChunk{}, fmt.Errorf("data page offset %d outside the file's %d bytes", data, size)
	}
	start := data
	if d := m.DictionaryPageOffset; d != 0 {
		if d < magic || d >= data {
			return guardedChunk{}, fmt.Errorf("dictionary page offset %d not between the file's start and the data page offset %d", d, data)
		}
		start = d
	}
	end := size // a chunk claimed past the file ends with it
	if n := m.TotalCompressedSize; n >= 0 && n <= size-start {
		end = start + n
	}
	if data >= end {
		return guardedChunk{}, fmt.Errorf("data page offset %d past its column chunk's end at byte %d", data, end)
	}
	return guardedChunk{start: start, end: end, data: data, next: start, codec: m.Codec, values: m.NumValues}, nil
}

func (g *pageGuard) ReadAt(p []byte, off int64) (int, error) {
	n, ok := g.fromHeld(p, off)
	var err error
	if !ok {
		n, err = g.r.ReadAt(p, off)
	}
	if n > 0 {
		if cerr := g.check(off, off+int64(n)); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// hold keeps b, the bytes of the file at off, to serve parquet-go's next
// reads of them (the footer, or the page body the guard has just checked)
// without reading them from the file again. The caller holds g.mu or is the
// only user of g.
func (g *pageGuard) hold(off int64, b []byte) { g.heldAt, g.held = off, b }

// fromHeld copies into p the bytes at off when the held bytes cover them.
func (g *pageGuard) fromHeld(p []byte, off int64) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if off < g.heldAt || off+int64(len(p)) > g.heldAt+int64(len(g.held)) {
		return 0, false
	}
	return copy(p, g.held[off-g.heldAt:]), true
}

// check parses, in each column chunk that [lo, hi) overlaps, the page headers
// from the first not yet checked to the last that starts before hi (the pages
// before a chunk's first data page must end where it starts): the chunks from
// the first that reaches past lo (a binary search, so a file of many chunks
// costs a few steps a read) to the last that starts before hi.
func (g *pageGuard) check(lo, hi int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := sort.Search(len(g.reach), func(i int) bool { return g.reach[i] > lo })
	for i := first; i < len(g.chunks); i++ {
		c := &g.chunks[i]
		if c.start >= hi {
			break
		}
		if c.end <= lo {
			continue
		}
		// Every header from the last one checked up to hi: a read that lands
		// past it (parquet-go's row reader seeks the stated data page offset
		// once it has read the dictionary) is walked up to as well. A read
		// behind it (parquet-go reads a chunk's dictionary, then the chunk
		// again from its start) reads pages already checked: the walk from
		// the chunk's start is the only one parquet-go's reads can follow,
		// so each page is parsed and decoded once.
		for c.next < hi && c.next < c.end {
			next, claims, err := g.checkPage(c, c.next)
			if err != nil {
				return err
			}
			if c.seen.add(claims); next == c.end {
				if err := c.complete(); err != nil {
					return err
				}
			}
			if c.next < c.data && next > c.data {
				// The pages from the dictionary's run past the stated first
				// data page: a reader of pages and parquet-go's row reader,
				// which seeks that offset, would read different pages.
				return fmt.Errorf("the page at byte %d runs to byte %d, past its column chunk's data page offset %d", c.next, next, c.data)
			}
			c.next = next
		}
	}
	return nil
}

// checkPage parses the page header at off in chunk c, checks its claims and
// its data (checkBody), and returns where the next page starts and what it
// claims (nothing for a page other than a data page).
func (g *pageGuard) checkPage(c *guardedChunk, off int64) (next int64, claims pageClaims, err error) {
	end := c.end
	var h format.PageHeader
	n, err := decodeHeader(g.r, off, end, &h)
	if err != nil {
		return 0, pageClaims{}, fmt.Errorf("page header at byte %d: %w", off, err)
	}
	left := end - off - n
	switch {
	case int64(h.CompressedPageSize) > left:
		return 0, pageClaims{}, fmt.Errorf("%w: the page at byte %d claims %d bytes, its column chunk has %d left", errPageClaim, off, h.CompressedPageSize, left)
	case h.UncompressedPageSize > maxPageBytes:
		return 0, pageClaims{}, fmt.Errorf("%w: the page at byte %d claims %d bytes uncompressed (at most %d)", errPageClaim, off, h.UncompressedPageSize, maxPageBytes)
	case h.CompressedPageSize < 0 || h.UncompressedPageSize < 0:
		return 0, pageClaims{}, fmt.Errorf("page header at byte %d: negative page size", off)
	case claimedValues(&h) > maxPageValues:
		return 0, pageClaims{}, fmt.Errorf("%w: the page at byte %d claims %d values (at most %d)", errPageClaim, off, claimedValues(&h), maxPageValues)
	}
	if err := g.checkBody(c, &h, off, n); err != nil {
		return 0, pageClaims{}, err
	}
	switch h.Type {
	case format.DataPage:
		claims = pageClaims{values: int64(h.DataPageHeader.V.NumValues), v1: 1}
	case format.DataPageV2:
		v2 := h.DataPageHeaderV2.V
		switch {
		case v2.NumNulls > v2.NumValues:
			return 0, pageClaims{}, fmt.Errorf("the page at byte %d claims %d nulls of %d values", off, v2.NumNulls, v2.NumValues)
		case c.leaf.known && c.leaf.maxDef == 0 && v2.NumNulls > 0:
			// parquet-go's row reader misread the rows after such a page
			// (FuzzScanText input 6cb5b0666b31151a).
			return 0, pageClaims{}, fmt.Errorf("the page at byte %d claims %d nulls in a required column", off, v2.NumNulls)
		}
		claims = pageClaims{values: int64(v2.NumValues), rowsV2: int64(v2.NumRows), v2: 1}
	}
	return off + n + int64(h.CompressedPageSize), claims, nil
}

// claimedValues is the largest count of values or rows in a page header.
func claimedValues(h *format.PageHeader) int64 {
	var n int32
	if h.DataPageHeader.Valid {
		n = max(n, h.DataPageHeader.V.NumValues)
	}
	if h.DataPageHeaderV2.Valid {
		n = max(n, h.DataPageHeaderV2.V.NumValues, h.DataPageHeaderV2.V.NumRows)
	}
	if h.DictionaryPageHeader.Valid {
		n = max(n, h.DictionaryPageHeader.V.NumValues)
	}
	return int64(n)
}

// decodeHeader decodes the Thrift page header at off into h and returns its
// length. A header holds statistics of any size, so it is read in growing
// windows up to the end of its chunk.
func decodeHeader(r io.ReaderAt, off, end int64, h *format.PageHeader) (int64, error) {
	var protocol thrift.CompactProtocol
	for window := int64(1 << 10); ; window *= 4 {
		w := min(window, end-off)
		buf := make([]byte, w)
		if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		*h = format.PageHeader{}
		pr := protocol.NewReaderFromBytes(buf)
		err := thrift.NewDecoder(pr).Decode(h)
		if err == nil {
			return int64(pr.BytesRead()), nil
		}
		if w == end-off {
			return 0, err
		}
	}
}
