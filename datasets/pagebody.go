package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
	"github.com/pierrec/lz4/v4"
)

// errPageData: a page's data does not hold what its header states: it
// decompresses to more (or not at all), so parquet-go's codec would size its
// output by the data, or holds fewer fixed-width values than its levels
// define, so parquet-go would read the rest from a pooled buffer.
var errPageData = errors.New("a page's data does not hold what its header states")

// checkBody bounds what parquet-go allocates to decompress the page at off
// (its header h, n bytes long, checked already) of chunk c, and checks that a
// page of fixed-width values stored plain holds them all (valuesFit).
// parquet-go hands its codecs a buffer of the header's uncompressed size, but
// they size their output by the data: Snappy allocates the length the data
// states (up to 4 GB), GZIP, Brotli and ZSTD decode until their stream ends
// (ZSTD first allocating a frame's stated content size, up to 64 GB), and
// LZ4_RAW doubles its buffer on any decoding error, without end. So the guard
// decodes the page itself, into a buffer of the stated size, and fails the
// read when its data holds more than the header states (or is no valid
// stream). Of a Snappy page whose values it need not count, it reads the
// stated length alone: parquet-go's decoder never writes past it.
// Uncompressed pages, and data pages v2 whose header marks them so, are not
// decompressed by parquet-go.
func (g *pageGuard) checkBody(c *guardedChunk, h *format.PageHeader, off, n int64) error {
	start, size, compressed, ok := compressedPart(h, c.codec, off+n)
	if !ok || skipBodyChecks {
		return nil
	}
	limit := int64(h.UncompressedPageSize)
	width := plainWidth(h, c.leaf)
	var err error
	switch {
	case width > 0:
		var data []byte
		if data, err = g.pageData(c.codec, compressed, start, size, limit); err == nil {
			if err = valuesFit(h, data, c.leaf, width); err != nil {
				return fmt.Errorf("%w: the page at byte %d: %v", errPageData, off, err)
			}
		}
	case !compressed:
		return nil
	case c.codec == format.Snappy:
		err = checkSnappy(g.r, start, size, limit)
	default:
		_, err = g.pageData(c.codec, true, start, size, limit)
	}
	if err != nil {
		return fmt.Errorf("%w: the page at byte %d (%s, %d bytes uncompressed): %v", errPageData, off, c.codec, limit, err)
	}
	return nil
}

// skipBodyChecks turns checkBody off. Only the benchmarks set it, to measure
// what its checks cost (BenchmarkScanText/*-unchecked).
var skipBodyChecks bool

// compressedPart is where the part of the page with header h, whose data
// starts at body, that parquet-go decompresses (when compressed: its chunk's
// codec is not UNCOMPRESSED) starts, and its size: a data or dictionary
// page's data, a data page v2's after its levels (never compressed when its
// header says so); false for other pages (parquet-go reads no values from
// them) and for levels longer than the page (parquet-go refuses it before it
// decompresses).
func compressedPart(h *format.PageHeader, codec format.CompressionCodec, body int64) (start, size int64, compressed, ok bool) {
	size = int64(h.CompressedPageSize)
	compressed = codec != format.Uncompressed
	switch h.Type {
	case format.DataPage, format.DictionaryPage:
		return body, size, compressed, true
	case format.DataPageV2:
		v2 := h.DataPageHeaderV2.V
		levels := int64(v2.RepetitionLevelsByteLength) + int64(v2.DefinitionLevelsByteLength)
		if levels < 0 || levels > size {
			return 0, 0, false, false
		}
		compressed = compressed && (!v2.IsCompressed.Valid || v2.IsCompressed.V)
		return body + levels, size - levels, compressed, true
	}
	return 0, 0, false, false
}

// pageData reads the size bytes at start into g's body buffer (held for
// parquet-go's read of them) and, when compressed, decodes them with codec
// into g's scratch buffer, failing when they hold more than limit
// bytes or are no valid stream (LZO and LZ4, which parquet-go refuses, are
// passed undecoded).
func (g *pageGuard) pageData(codec format.CompressionCodec, compressed bool, start, size, limit int64) ([]byte, error) {
	g.hold(0, nil) // the buffer held is about to change
	if int64(cap(g.body)) < size {
		g.body = make([]byte, size)
	}
	body := g.body[:size]
	if _, err := g.r.ReadAt(body, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	g.hold(start, body) // parquet-go reads the page next
	if !compressed {
		return body, nil
	}
	return g.decodedWithin(codec, body, limit)
}

// checkSnappy reads the decoded length a Snappy block of size bytes at start
// states (a varint of at most 5 bytes) and checks it against limit.
func checkSnappy(r io.ReaderAt, start, size, limit int64) error {
	head := make([]byte, min(size, 5))
	if _, err := r.ReadAt(head, start); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err := snappyLen(head, limit)
	return err
}

// snappyLen is the decoded length a Snappy block (or its first bytes)
// states, at most limit.
func snappyLen(block []byte, limit int64) (int, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return 0, err
	}
	if int64(n) > limit {
		return 0, fmt.Errorf("its data states %d bytes", n)
	}
	return n, nil
}

// decodedWithin decodes body, compressed with codec, into g's scratch
// buffer of limit bytes, and fails when it holds more or is no valid stream
// (ZSTD's DecodeAll, capped there, allocates no window: a frame may state a
// window of gigabytes; GZIP's and Brotli's windows are at most 32 KB and 16
// MB, which parquet-go's decoders take as well).
func (g *pageGuard) decodedWithin(codec format.CompressionCodec, body []byte, limit int64) ([]byte, error) {
	buf := g.buffer(limit)
	var r io.Reader
	switch codec {
	case format.Snappy:
		if _, err := snappyLen(body, limit); err != nil {
			return nil, err
		}
		return snappy.Decode(buf, body)
	case format.Lz4Raw:
		n, err := lz4.UncompressBlock(body, buf)
		return buf[:n], err
	case format.Zstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		return d.DecodeAll(body, buf[:0])
	case format.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		r = zr
	case format.Brotli:
		r = brotli.NewReader(bytes.NewReader(body))
	default:
		return body, nil // LZO, LZ4: parquet-go refuses them
	}
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	var one [1]byte
	m, err := io.ReadFull(r, one[:])
	if m > 0 {
		return nil, fmt.Errorf("its data holds more than %d bytes", limit)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf, nil
}

// buffer returns g's scratch buffer, n bytes long (n is at most
// maxPageBytes: checkPage checked it).
func (g *pageGuard) buffer(n int64) []byte {
	if int64(cap(g.scratch)) < n {
		g.scratch = make([]byte, n)
	}
	return g.scratch[:n]
}

// zstdDecoders decode whole ZSTD pages, never past their destination's
// capacity.
var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(err) // constant options
	}
	return d
}}
