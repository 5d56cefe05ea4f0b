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

// errPageData: a compressed page decompresses to more than its header states
// (or not at all), so parquet-go's codec would size its output by the data.
var errPageData = errors.New("a compressed page does not decompress within its stated size")

// checkBody bounds what parquet-go allocates to decompress the page at off
// (its header h, n bytes long, checked already), compressed with codec.
// parquet-go hands its codecs a buffer of the header's uncompressed size, but
// they size their output by the data: Snappy allocates the length the data
// states (up to 4 GB), GZIP, Brotli and ZSTD decode until their stream ends
// (ZSTD first allocating a frame's stated content size, up to 64 GB), and
// LZ4_RAW doubles its buffer on any decoding error, without end. So the guard
// decodes the page itself, into nothing or into a buffer of the stated size,
// and fails the read when its data holds more than the header states (or is
// no valid stream). Snappy's stated length is read alone: parquet-go's
// decoder never writes past it. Uncompressed pages, and data pages v2 whose
// header marks them so, are not decoded by parquet-go and pass.
func (g *pageGuard) checkBody(codec format.CompressionCodec, h *format.PageHeader, off, n int64) error {
	start, size, ok := compressedPart(h, off+n)
	if !ok {
		return nil
	}
	limit := int64(h.UncompressedPageSize)
	var err error
	switch codec {
	case format.Snappy:
		err = checkSnappy(g.r, start, size, limit)
	case format.Gzip, format.Brotli, format.Zstd, format.Lz4Raw:
		body := make([]byte, size)
		if _, rerr := g.r.ReadAt(body, start); rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
		err = g.decodedWithin(codec, body, limit)
	default:
		return nil // uncompressed, or a codec parquet-go refuses (LZO, LZ4)
	}
	if err != nil {
		return fmt.Errorf("%w: the page at byte %d (%s, %d bytes uncompressed): %v", errPageData, off, codec, limit, err)
	}
	return nil
}

// compressedPart is where the part of the page with header h, whose data
// starts at body, that parquet-go decompresses starts, and its size: a data
// or dictionary page's data, a data page v2's after its levels (none when its
// header marks it uncompressed); false for other pages (parquet-go reads no
// values from them) and for levels longer than the page (parquet-go refuses
// it before it decompresses).
func compressedPart(h *format.PageHeader, body int64) (start, size int64, ok bool) {
	size = int64(h.CompressedPageSize)
	switch h.Type {
	case format.DataPage, format.DictionaryPage:
		return body, size, true
	case format.DataPageV2:
		v2 := h.DataPageHeaderV2.V
		levels := int64(v2.RepetitionLevelsByteLength) + int64(v2.DefinitionLevelsByteLength)
		if (v2.IsCompressed.Valid && !v2.IsCompressed.V) || levels < 0 || levels > size {
			return 0, 0, false
		}
		return body + levels, size - levels, true
	}
	return 0, 0, false
}

// checkSnappy reads the decoded length a Snappy block of size bytes at start
// states (a varint of at most 5 bytes) and checks it against limit.
func checkSnappy(r io.ReaderAt, start, size, limit int64) error {
	head := make([]byte, min(size, 5))
	if _, err := r.ReadAt(head, start); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	n, err := snappy.DecodedLen(head)
	if err != nil {
		return err
	}
	if int64(n) > limit {
		return fmt.Errorf("its data states %d bytes", n)
	}
	return nil
}

// decodedWithin decodes body, compressed with codec, and fails when it holds
// more than limit bytes or is no valid stream. GZIP and Brotli stream into
// nothing (their windows are at most 32 KB and 16 MB, which parquet-go's
// decoders take as well); ZSTD and LZ4_RAW decode into g's scratch buffer of
// limit bytes (ZSTD's DecodeAll, capped there, allocates no window: a frame
// may state a window of gigabytes).
func (g *pageGuard) decodedWithin(codec format.CompressionCodec, body []byte, limit int64) error {
	var r io.Reader
	switch codec {
	case format.Lz4Raw:
		_, err := lz4.UncompressBlock(body, g.buffer(limit))
		return err
	case format.Zstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		_, err := d.DecodeAll(body, g.buffer(limit)[:0])
		return err
	case format.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return err
		}
		r = zr
	case format.Brotli:
		r = brotli.NewReader(bytes.NewReader(body))
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if n > limit {
		return fmt.Errorf("its data holds more than %d bytes", limit)
	}
	return nil
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
