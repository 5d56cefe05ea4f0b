package datasets

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

// Files as Arrow writers make them (every column nullable, strings often
// dictionary-encoded, data pages of version 1 or 2): ScanTextsAt reads a null
// text as "", as the row reader does, on its page path.
func TestScanTextsArrowGoNullable(t *testing.T) {
	texts := make([]string, 500)
	valid := make([]bool, len(texts))
	want := make([]string, len(texts))
	for i := range texts {
		texts[i] = strings.Repeat(string(rune('a'+i%26)), i%37)
		valid[i] = i%6 != 1
		if valid[i] {
			want[i] = texts[i]
		}
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "text", Type: arrow.BinaryTypes.String, Nullable: true}, {Name: "url", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	b.Field(0).(*array.StringBuilder).AppendValues(texts, valid)
	b.Field(1).(*array.StringBuilder).AppendValues(texts, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	tests := []struct {
		name  string
		props []parquet.WriterProperty
	}{
		{"plain, page v1", []parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithDataPageVersion(parquet.DataPageV1)}},
		{"plain, page v2", []parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithDataPageVersion(parquet.DataPageV2)}},
		{"dictionary, page v1", []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV1)}},
		{"dictionary, page v2, small pages", []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithDataPageSize(256)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tbl := array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
			defer tbl.Release()
			if err := pqarrow.WriteTable(tbl, &buf, 128, parquet.NewWriterProperties(tc.props...), pqarrow.DefaultWriterProps()); err != nil {
				t.Fatal(err)
			}
			pf, err := openParquetAt(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "s.parquet")
			if err != nil {
				t.Fatal(err)
			}
			if col, ok := stringColumn(pf.Schema(), "text"); !ok || !col.optional {
				t.Fatalf("text column: %+v, %v; want the page path for a nullable column", col, ok)
			}
			got, err := scanTextsAll(buf.Bytes())
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("ScanTextsAt read %d texts (%v), want %d", len(got), err, len(want))
			}
			if ref, err := textRowsAll(buf.Bytes()); err != nil || !slices.Equal(ref, want) {
				t.Fatalf("the row reader read %d texts (%v), want %d", len(ref), err, len(want))
			}
		})
	}
}
