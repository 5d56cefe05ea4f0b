package datasets

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Parquet written by parquet-go reads back through arrow-go's reader, and the
// other way round.
func TestParquetInteropWithArrowGo(t *testing.T) {
	dir := t.TempDir()
	rows := []TokensRow{{ID: 0, IDs: []int32{5, 6, 7}}, {ID: 1, IDs: nil}, {ID: 2, IDs: []int32{50256}}}
	ours := filepath.Join(dir, "ours.parquet")
	if err := WriteParquet(ours, rows, 2); err != nil {
		t.Fatal(err)
	}
	// parquet-go -> arrow-go
	tbl := arrowTable(t, ours)
	if tbl.NumRows() != 3 {
		t.Fatalf("arrow-go read %d rows", tbl.NumRows())
	}
	idsCol := tbl.Column(int(tbl.Schema().FieldIndices("ids")[0])).Data().Chunk(0).(*array.List)
	var got [][]int32
	for i := 0; i < idsCol.Len(); i++ {
		lo, hi := idsCol.ValueOffsets(i)
		vals := idsCol.ListValues().(*array.Int32).Int32Values()[lo:hi]
		got = append(got, append([]int32{}, vals...))
	}
	if !reflect.DeepEqual(got, [][]int32{{5, 6, 7}, {}, {50256}}) {
		t.Errorf("arrow-go read ids %v", got)
	}

	// arrow-go -> parquet-go
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "text", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{10, 11}, nil)
	b.Field(1).(*array.StringBuilder).AppendValues([]string{"hello", "wörld"}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	theirs := filepath.Join(dir, "theirs.parquet")
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(array.NewTableFromRecords(schema, []arrow.RecordBatch{rec}), &buf, 1024, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(theirs, buf.Bytes(), 0o644)
	var texts []TextRow
	if err := ScanParquet(theirs, []string{"id", "text"}, func(b []TextRow) error { texts = append(texts, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(texts, []TextRow{{10, "hello"}, {11, "wörld"}}) {
		t.Errorf("parquet-go read %v", texts)
	}
	if got, err := scanTextAll(buf.Bytes()); err != nil || !reflect.DeepEqual(got, texts) { // nullable columns: the row path
		t.Errorf("ScanTextAt read %v, %v", got, err)
	}
	var docs []string
	if err := ReadDocs(theirs, "text", ByLine, func(s string) error { docs = append(docs, s); return nil }); err != nil || !reflect.DeepEqual(docs, []string{"hello", "wörld"}) {
		t.Errorf("ReadDocs = %v, %v", docs, err)
	}
}
