package datasets

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// Token tables (tokens/v1, packed/v1) are written uncompressed (Snappy took a
// third of the data path and saved little on token ids) through arrow-go's
// column-chunk writer with levels computed here (rawparquet.go), and read
// through parquet-go page by page (tokenscan.go). Text tables use parquet-go.
// Tests read each library's files with the other.

var tokensSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "ids", Type: arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32)},
}, nil)

// dataPageSize is the target size of a data page. arrow-go's default, 1 MB,
// grows each page's buffer by doubling from a pool the collector empties, and
// the page is copied again when it is built: BenchmarkTokensWriter ran at 340
// MB/s with it and 1,100 MB/s with 64 KB pages, allocating 7x less, and
// BenchmarkScanTokensTables reads the smaller pages faster too (bench/README,
// "Data stages").
const dataPageSize = 64 << 10

func parquetProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed),
		parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(1<<30),
		parquet.WithDataPageSize(dataPageSize),
		// The attention mask (all ones in wrap mode, runs of ones then zeros in pad
		// mode) as PLAIN INT32 was 4 bytes a token, a third of packed/v1 on disk;
		// delta encoding makes it a few bytes a page. Token ids stay PLAIN.
		parquet.WithEncodingFor("attention_mask.list.element", parquet.Encodings.DeltaBinaryPacked))
}

// TokensTable is a tokens/v1 shard in columnar form: document i has id IDs[i]
// and tokens Flat[Offsets[i]:Offsets[i+1]] (len(Offsets) = len(IDs)+1).
type TokensTable struct {
	IDs     []int64
	Offsets []int64
	Flat    []int32
}

// TokensWriter streams a tokens/v1 shard: each WriteTable call appends one
// row group.
type TokensWriter struct {
	lw       *levelWriter
	def, rep []int16
}

// NewTokensWriter starts a tokens/v1 Parquet file on w (name is for errors).
func NewTokensWriter(w io.Writer, name string) (*TokensWriter, error) {
	lw, err := newLevelWriter(w, name, tokensSchema)
	if err != nil {
		return nil, err
	}
	return &TokensWriter{lw: lw}, nil
}

// WriteTable appends t as one row group.
func (tw *TokensWriter) WriteTable(t TokensTable) error {
	if len(t.Offsets) != len(t.IDs)+1 || t.Offsets[0] != 0 || t.Offsets[len(t.IDs)] != int64(len(t.Flat)) {
		return fmt.Errorf("write %s: %d documents, %d offsets, %d tokens: inconsistent table", tw.lw.name, len(t.IDs), len(t.Offsets), len(t.Flat))
	}
	tw.def, tw.rep = listLevels(t.Offsets, tw.def, tw.rep)
	return tw.lw.writeRowGroup(column{i64: t.IDs}, column{i32: t.Flat, def: tw.def, rep: tw.rep})
}

// Close writes the footer (a file without row groups is valid and empty).
func (tw *TokensWriter) Close() error { return tw.lw.Close() }

// WriteTokensTable writes a tokens/v1 shard of one row group atomically; the
// bytes are hashed on the way (atomicfile), so publishing it costs no second read.
func WriteTokensTable(path string, t TokensTable) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		tw, err := NewTokensWriter(w, path)
		if err != nil {
			return err
		}
		if err := tw.WriteTable(t); err != nil {
			return err
		}
		return tw.Close()
	})
}

// WriteTokensParquet writes rows as a tokens/v1 shard (see WriteTokensTable).
func WriteTokensParquet(path string, rows []TokensRow) error {
	t := TokensTable{IDs: make([]int64, len(rows)), Offsets: make([]int64, 1, len(rows)+1)}
	for i, r := range rows {
		t.IDs[i] = r.ID
		t.Flat = append(t.Flat, r.IDs...)
		t.Offsets = append(t.Offsets, int64(len(t.Flat)))
	}
	return WriteTokensTable(path, t)
}

// ScanTokensParquet streams a tokens/v1 shard (ours, or any Parquet file with an
// int64 "id" and a list<int32> "ids" column): fn gets each document's id and ids
// (a view valid during the call).
func ScanTokensParquet(path string, fn func(id int64, ids []int32) error) error {
	return ScanTokensTables(path, func(t TokensTable) error {
		for i, id := range t.IDs {
			if err := fn(id, t.Flat[t.Offsets[i]:t.Offsets[i+1]]); err != nil {
				return err
			}
		}
		return nil
	})
}
