package datasets

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	pqbrotli "github.com/parquet-go/parquet-go/compress/brotli"
	pqgzip "github.com/parquet-go/parquet-go/compress/gzip"
	pqlz4 "github.com/parquet-go/parquet-go/compress/lz4"
	pqsnappy "github.com/parquet-go/parquet-go/compress/snappy"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// codecs are the compression codecs parquet-go reads, by name.
var codecs = []struct {
	name  string
	codec compress.Codec
}{
	{"UNCOMPRESSED", &parquet.Uncompressed},
	{"SNAPPY", &pqsnappy.Codec{}},
	{"GZIP", &pqgzip.Codec{}},
	{"BROTLI", &pqbrotli.Codec{}},
	{"ZSTD", &pqzstd.Codec{}},
	{"LZ4_RAW", &pqlz4.Codec{}},
}

// writeCompressed writes rows with codec, data pages of version 1 or 2 and
// pages of about 2 KB, in row groups of 100 rows.
func writeCompressed[T any](t testing.TB, rows []T, codec compress.Codec, version int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[T](&b, parquet.Compression(codec), parquet.DataPageVersion(version),
		parquet.PageBufferSize(2<<10), parquet.MaxRowsPerRowGroup(100))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Files of every codec parquet-go reads, with data pages v1 and v2, plain
// and dictionary-encoded, nullable, pass the guard's checks of what their
// pages decompress to, and read whole.
func TestCompressedPagesRead(t *testing.T) {
	docs := textDocs(250, 30)
	var want []string
	for _, d := range docs {
		want = append(want, d.Text)
	}
	dict := make([]textRowDict, len(docs))
	nullable := make([]textRowNullText, len(docs))
	for i, d := range docs {
		dict[i] = textRowDict{ID: d.ID, Text: d.Text}
		nullable[i] = textRowNullText{ID: d.ID, Text: &docs[i].Text}
	}
	for _, c := range codecs {
		for _, version := range []int{1, 2} {
			for _, f := range []struct {
				layout string
				data   []byte
			}{
				{"plain", writeCompressed(t, docs, c.codec, version)},
				{"dictionary", writeCompressed(t, dict, c.codec, version)},
				{"nullable", writeCompressed(t, nullable, c.codec, version)},
			} {
				texts, err := scanTextsAll(f.data)
				if err != nil || !slices.Equal(texts, want) {
					t.Errorf("%s, data pages v%d, %s: %d texts (equal: %v), %v", c.name, version, f.layout, len(texts), slices.Equal(texts, want), err)
				}
			}
		}
	}
}

// withPageBody returns data, a file of one row group whose text column
// (column 1) is one data page, with that page's data replaced by body; the
// header keeps its uncompressed size and drops its checksum.
func withPageBody(t *testing.T, data []byte, body []byte) []byte {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true))
	if err != nil {
		t.Fatal(err)
	}
	md := pf.Metadata().RowGroups[0].Columns[1].MetaData
	p := md.DataPageOffset
	var h format.PageHeader
	n, err := decodeHeader(bytes.NewReader(data), p, int64(len(data)), &h)
	if err != nil {
		t.Fatal(err)
	}
	if md.DictionaryPageOffset != 0 || n+int64(h.CompressedPageSize) != md.TotalCompressedSize {
		t.Fatalf("the text column is not one data page: %+v", md)
	}
	h.CompressedPageSize, h.CRC = int32(len(body)), 0
	hb, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		t.Fatal(err)
	}
	out := slices.Concat(data[:p], hb, body, data[p+md.TotalCompressedSize:])
	return withFooter(t, out, func(fm *format.FileMetaData) {
		fm.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = int64(len(hb) + len(body))
	})
}

// A page whose data decompresses to far more than its header states, or
// that LZ4_RAW cannot decode, is refused before parquet-go's codec sizes its
// output by the data: 32 MB of zeros in a page stated at about 100 bytes
// (GZIP, Brotli, ZSTD), a Snappy block stating 4 GB, random bytes as LZ4_RAW
// (parquet-go's decoder doubled its buffer on every error until the process
// ran out of memory: FuzzScanTokens input f7ddd7ed5c277e59).
func TestCompressedPageBombRefused(t *testing.T) {
	zeros := make([]byte, 32<<20)
	var gz, br bytes.Buffer
	gw := kgzip.NewWriter(&gz)
	gw.Write(zeros)
	gw.Close()
	bw := brotli.NewWriterLevel(&br, 1)
	bw.Write(zeros)
	bw.Close()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := zw.EncodeAll(zeros, nil)
	snappy4G := binary.AppendUvarint(nil, 1<<32-1)
	snappy4G = append(snappy4G, 0, 0, 0, 0)
	noise := make([]byte, 512)
	rand.Read(noise)
	bombs := map[string][]byte{"GZIP": gz.Bytes(), "BROTLI": br.Bytes(), "ZSTD": zst, "SNAPPY": snappy4G, "LZ4_RAW": noise}
	for _, c := range codecs {
		bomb, ok := bombs[c.name]
		if !ok {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			good := writeCompressed(t, textDocs(6, 3), c.codec, 1)
			bad := withPageBody(t, good, bomb)
			limit := uint64(4 << 20)
			if c.name == "BROTLI" {
				limit = 24 << 20 // a Brotli stream's window, up to 16 MB, as parquet-go's decoder takes
			}
			refusedWithin(t, bad, []string{"ScanTextAt", "ScanParquet", "ReadDocs"}, func(err error) bool {
				return errors.Is(err, errPageData) && strings.Contains(err.Error(), fmt.Sprintf("(%s, ", c.name))
			}, limit)
		})
	}
}
