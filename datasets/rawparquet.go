package datasets

import (
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// Token columns go through arrow-go's column-chunk API with definition and
// repetition levels computed here: a token list is flat values plus one
// repetition level per token (0 starts a document), so building the levels is a
// fill, where pqarrow's generic path walks Arrow arrays value by value and
// regrows its buffers (it was most of the table time). The Parquet schema is the
// one pqarrow derives from the Arrow schema, so pqarrow, DuckDB and pyarrow read
// the files as list<int32> / fixed_size_list columns.

// levelWriter writes row groups of a file with required top-level columns.
type levelWriter struct {
	fw   *file.Writer
	name string
}

func newLevelWriter(w io.Writer, name string, as *arrow.Schema) (*levelWriter, error) {
	props := parquetProps()
	sch, err := pqarrow.ToParquet(as, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("write %s: schema: %w", name, err)
	}
	fw, err := file.NewParquetWriterWithError(w, sch.Root(), file.WithWriterProps(props))
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return &levelWriter{fw: fw, name: name}, nil
}

// column is one column chunk of a row group: flat values and, for list
// columns, their levels.
type column struct {
	i64      []int64
	i32      []int32
	def, rep []int16
}

// writeRowGroup appends a row group holding cols in schema order.
func (l *levelWriter) writeRowGroup(cols ...column) (err error) {
	defer recoverWrite(l.name, &err)
	rg, err := l.fw.AppendRowGroupChecked()
	if err != nil {
		return fmt.Errorf("write %s: %w", l.name, err)
	}
	for _, c := range cols {
		cw, err := rg.NextColumn()
		if err != nil {
			return fmt.Errorf("write %s: %w", l.name, err)
		}
		switch w := cw.(type) {
		case *file.Int64ColumnChunkWriter:
			_, err = w.WriteBatch(c.i64, c.def, c.rep)
		case *file.Int32ColumnChunkWriter:
			_, err = w.WriteBatch(c.i32, c.def, c.rep)
		default:
			err = fmt.Errorf("column %s: unexpected writer %T", cw.Descr().Path(), cw)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", l.name, err)
		}
		if err := cw.Close(); err != nil {
			return fmt.Errorf("write %s: %w", l.name, err)
		}
	}
	if err := rg.Close(); err != nil {
		return fmt.Errorf("write %s: %w", l.name, err)
	}
	return nil
}

func (l *levelWriter) Close() error {
	if err := l.fw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", l.name, err)
	}
	return nil
}

// recoverWrite turns a panic of the column writers into an error.
func recoverWrite(name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("write %s: %v", name, r)
	}
}

// listLevels fills def and rep for documents with the given offsets into a
// flat value array of a required list<required T> column (max levels 1, 1):
// a document of k > 0 values gives k entries (rep 0 then 1s, def 1), an empty
// document one entry (rep 0, def 0). It returns the slices, reusing their
// storage. Both start as all ones (copies, not a loop a value at a time); then
// each document's first entry is marked.
func listLevels(offsets []int64, def, rep []int16) ([]int16, []int16) {
	n := 0
	for i := 0; i+1 < len(offsets); i++ {
		n += max(1, int(offsets[i+1]-offsets[i]))
	}
	def, rep = fillOnes(grow16(def, n)), fillOnes(grow16(rep, n))
	k := 0
	for i := 0; i+1 < len(offsets); i++ {
		m := int(offsets[i+1] - offsets[i])
		rep[k] = 0
		if m == 0 {
			def[k] = 0
			m = 1
		}
		k += m
	}
	return def, rep
}

// fillOnes sets every element of s to 1 by doubling copies.
func fillOnes(s []int16) []int16 {
	if len(s) == 0 {
		return s
	}
	s[0] = 1
	for j := 1; j < len(s); j *= 2 {
		copy(s[j:], s[:j])
	}
	return s
}

func grow16(s []int16, n int) []int16 {
	if cap(s) < n {
		return make([]int16, n)
	}
	return s[:n]
}

// listColumnReader reads a list<int32> column (max repetition level 1) of any
// nullability, the way other writers may have produced it.
type listColumnReader struct {
	idx            int
	maxDef         int16
	elemNullDef    int16 // the def level of a null element; -1 if elements are required
	vals           []int32
	def, rep       []int16
	path, filePath string
}

func findColumn(sch *schema.Schema, pred func(*schema.Column) bool) int {
	for i := 0; i < sch.NumColumns(); i++ {
		if pred(sch.Column(i)) {
			return i
		}
	}
	return -1
}

func newListColumnReader(path string, sch *schema.Schema, name string) (*listColumnReader, error) {
	i := findColumn(sch, func(c *schema.Column) bool { return strings.HasPrefix(c.Path(), name+".") })
	if i < 0 {
		return nil, fmt.Errorf("%s: missing column %q", path, name)
	}
	c := sch.Column(i)
	if c.PhysicalType() != parquet.Types.Int32 || c.MaxRepetitionLevel() != 1 {
		return nil, fmt.Errorf("%s: column %q is %s with repetition depth %d, want a list of int32", path, name, c.PhysicalType(), c.MaxRepetitionLevel())
	}
	r := &listColumnReader{idx: i, maxDef: c.MaxDefinitionLevel(), elemNullDef: -1, path: c.Path(), filePath: path}
	if c.SchemaNode().RepetitionType() == parquet.Repetitions.Optional {
		r.elemNullDef = r.maxDef - 1
	}
	return r, nil
}

// read loads the column chunk of row group rg (numLevels level entries).
func (r *listColumnReader) read(rg *file.RowGroupReader) error {
	cc, err := rg.Column(r.idx)
	if err != nil {
		return err
	}
	cr, ok := cc.(*file.Int32ColumnChunkReader)
	if !ok {
		return fmt.Errorf("column %s: unexpected reader %T", r.path, cc)
	}
	meta, err := rg.MetaData().ColumnChunk(r.idx)
	if err != nil {
		return err
	}
	n := meta.NumValues()
	if n < 0 {
		return fmt.Errorf("column %s: %d level entries claimed", r.path, n)
	}
	// Buffers grow with what is actually decoded, in batches, so a damaged
	// header that claims billions of entries costs nothing until data backs it.
	r.vals, r.def, r.rep = r.vals[:0], r.def[:0], r.rep[:0]
	levels, values := 0, 0
	for int64(levels) < n {
		batch := int(min(n-int64(levels), readBatch))
		r.vals, r.def, r.rep = grow(r.vals, values+batch), grow(r.def, levels+batch), grow(r.rep, levels+batch)
		total, got, err := cr.ReadBatch(int64(batch), r.vals[values:values+batch], r.def[levels:levels+batch], r.rep[levels:levels+batch])
		if err != nil {
			return fmt.Errorf("column %s: %w", r.path, err)
		}
		if total == 0 {
			return fmt.Errorf("column %s: %d of %d level entries present (truncated?)", r.path, levels, n)
		}
		levels += int(total)
		values += got
	}
	r.def, r.rep, r.vals = r.def[:levels], r.rep[:levels], r.vals[:values]
	return nil
}

// readBatch is the most level entries decoded per call.
const readBatch = 1 << 20

// grow returns s with length n, keeping its contents (amortised doubling).
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		t := make([]T, n, max(n, 2*cap(s)))
		copy(t, s)
		return t
	}
	return s[:n]
}

// each calls fn with every row's values (a view into the reader's buffer).
func (r *listColumnReader) each(fn func(row int, vals []int32) error) error {
	row, v := -1, 0
	start := 0
	for k := range r.def {
		if r.rep[k] == 0 {
			if row >= 0 {
				if err := fn(row, r.vals[start:v]); err != nil {
					return err
				}
			}
			row++
			start = v
		}
		switch d := r.def[k]; {
		case d == r.maxDef:
			v++
		case d == r.elemNullDef:
			return fmt.Errorf("%s: column %s row %d holds a null token id", r.filePath, r.path, row)
		}
	}
	if row >= 0 {
		return fn(row, r.vals[start:v])
	}
	return nil
}
