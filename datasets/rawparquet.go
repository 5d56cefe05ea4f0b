package datasets

import (
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
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
