package datasets

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// Token tables (tokens/v1, packed/v1) are written uncompressed (Snappy took a
// third of the data path and saved little on token ids) through arrow-go's
// column-chunk writer and reader with levels computed here (rawparquet.go).
// Text tables use parquet-go. Tests read each library's files with the other.

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

// ScanTokensTables reads a tokens/v1 shard row group by row group; each table
// is freshly allocated, so fn may keep it (say, hand it to another goroutine).
// The file is memory-mapped.
func ScanTokensTables(path string, fn func(TokensTable) error) (err error) {
	defer recoverCorrupt(path, &err)
	pr, err := file.OpenParquetFile(path, true)
	if err != nil {
		if os.IsNotExist(err) {
			return err
		}
		return fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", path, err)
	}
	defer pr.Close()
	return scanTokensReader(pr, path, fn)
}

// ScanTokensTablesAt is ScanTokensTables over size bytes of r (a local
// file, or one streamed from an object store), naming the file name in
// errors.
func ScanTokensTablesAt(r io.ReaderAt, size int64, name string, fn func(TokensTable) error) (err error) {
	defer recoverCorrupt(name, &err)
	pr, err := file.NewParquetReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	defer pr.Close()
	return scanTokensReader(pr, name, fn)
}

// scanTokensReader reads the row groups of an open tokens/v1 shard.
func scanTokensReader(pr *file.Reader, path string, fn func(TokensTable) error) error {
	var err error
	sch := pr.MetaData().Schema
	idCol := findColumn(sch, func(c *schema.Column) bool { return c.Path() == "id" })
	if idCol < 0 {
		return fmt.Errorf("%s: missing column %q (has %s)", path, "id", columnPaths(sch))
	}
	if c := sch.Column(idCol); c.PhysicalType() != parquet.Types.Int64 {
		return fmt.Errorf("%s: column id is %s, want int64", path, c.PhysicalType())
	}
	lists, err := newListColumnReader(path, sch, "ids")
	if err != nil {
		return fmt.Errorf("%w (has %s)", err, columnPaths(sch))
	}
	var idDef []int16
	for g := 0; g < pr.NumRowGroups(); g++ {
		rg := pr.RowGroup(g)
		n := int(rg.NumRows())
		var t TokensTable
		if t.IDs, idDef, err = readInt64Column(rg, idCol, n, nil, idDef); err != nil {
			return fmt.Errorf("%s: row group %d: %w", path, g, err)
		}
		lists.vals = nil // fresh values: the table outlives this iteration
		if err := lists.read(rg); err != nil {
			return fmt.Errorf("%s: row group %d: %w", path, g, err)
		}
		t.Flat, t.Offsets = lists.vals, make([]int64, 1, min(n, readBatch)+1)
		err := lists.each(func(row int, vals []int32) error {
			t.Offsets = append(t.Offsets, t.Offsets[len(t.Offsets)-1]+int64(len(vals)))
			return nil
		})
		if err != nil {
			return err
		}
		if len(t.Offsets) != n+1 {
			return fmt.Errorf("%s: row group %d: column ids has %d rows, id %d", path, g, len(t.Offsets)-1, n)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// readInt64Column reads n non-null values of a flat int64 column.
func readInt64Column(rg *file.RowGroupReader, idx, n int, vals []int64, def []int16) ([]int64, []int16, error) {
	cc, err := rg.Column(idx)
	if err != nil {
		return vals, def, err
	}
	cr, ok := cc.(*file.Int64ColumnChunkReader)
	if !ok {
		return vals, def, fmt.Errorf("column id: unexpected reader %T", cc)
	}
	if n < 0 {
		return vals, def, fmt.Errorf("column id: %d rows claimed", n)
	}
	vals, def = vals[:0], def[:0]
	for got := 0; got < n; {
		batch := min(n-got, readBatch) // grow with the data, not the header's claim
		vals, def = grow(vals, got+batch), grow(def, got+batch)
		total, values, err := cr.ReadBatch(int64(batch), vals[got:got+batch], def[got:got+batch], nil)
		if err != nil {
			return vals, def, fmt.Errorf("column id: %w", err)
		}
		if total == 0 {
			return vals, def, fmt.Errorf("column id: %d of %d values present (truncated?)", got, n)
		}
		if int64(values) != total {
			return vals, def, fmt.Errorf("column id: null document id near row %d", got)
		}
		got += int(total)
	}
	return vals, def, nil
}

func columnPaths(sch *schema.Schema) string {
	var out []string
	for i := 0; i < sch.NumColumns(); i++ {
		out = append(out, sch.Column(i).Path())
	}
	return strings.Join(out, ", ")
}
