package datasets

import (
	"bytes"
	"fmt"
	"math"
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
	if got, err := scanTextAll(buf.Bytes()); err != nil || !reflect.DeepEqual(got, texts) { // nullable columns
		t.Errorf("ScanTextAt read %v, %v", got, err)
	}
	var docs []string
	if err := ReadDocs(theirs, "text", ByLine, func(s string) error { docs = append(docs, s); return nil }); err != nil || !reflect.DeepEqual(docs, []string{"hello", "wörld"}) {
		t.Errorf("ReadDocs = %v, %v", docs, err)
	}
}

// Ids of every integer type as arrow-go writes them (nullable without nulls;
// dictionary pages, plain pages of version 2, a dictionary falling back to
// plain pages within a chunk), at the types' limits, read as their values by
// ScanTextAt.
func TestScanTextArrowGoIDs(t *testing.T) {
	types := []struct {
		typ      arrow.DataType
		min, max int64
	}{
		{arrow.PrimitiveTypes.Int8, math.MinInt8, math.MaxInt8},
		{arrow.PrimitiveTypes.Int16, math.MinInt16, math.MaxInt16},
		{arrow.PrimitiveTypes.Int32, math.MinInt32, math.MaxInt32},
		{arrow.PrimitiveTypes.Int64, math.MinInt64, math.MaxInt64},
		{arrow.PrimitiveTypes.Uint8, 0, math.MaxUint8},
		{arrow.PrimitiveTypes.Uint16, 0, math.MaxUint16},
		{arrow.PrimitiveTypes.Uint32, 0, math.MaxUint32},
		{arrow.PrimitiveTypes.Uint64, 0, math.MaxInt64},
	}
	layouts := []struct {
		name  string
		props []parquet.WriterProperty
	}{
		{"dictionary", nil},
		{"plain, page v2", []parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithDataPageVersion(parquet.DataPageV2)}},
		{"dictionary falling back to plain", []parquet.WriterProperty{parquet.WithDictionaryPageSizeLimit(64), parquet.WithBatchSize(32)}},
	}
	want := make([]TextRow, 2000)
	for _, ty := range types {
		for i := range want {
			want[i] = TextRow{ID: ty.max - int64(i%97), Text: fmt.Sprint("doc ", i)}
			if i%2 == 1 {
				want[i].ID = ty.min + int64(i%89)
			}
		}
		schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: ty.typ, Nullable: true}, {Name: "text", Type: arrow.BinaryTypes.String}}, nil)
		b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
		for _, r := range want {
			appendArrowInt(t, b.Field(0), r.ID)
			b.Field(1).(*array.StringBuilder).Append(r.Text)
		}
		rec := b.NewRecordBatch()
		b.Release()
		for _, l := range layouts {
			t.Run(ty.typ.String()+", "+l.name, func(t *testing.T) {
				var buf bytes.Buffer
				props := parquet.NewWriterProperties(append([]parquet.WriterProperty{parquet.WithMaxRowGroupLength(700)}, l.props...)...)
				if err := pqarrow.WriteTable(array.NewTableFromRecords(schema, []arrow.RecordBatch{rec}), &buf, 700, props, pqarrow.DefaultWriterProps()); err != nil {
					t.Fatal(err)
				}
				got, err := scanTextAll(buf.Bytes())
				if err != nil || !reflect.DeepEqual(got, want) {
					i := 0
					for i < min(len(got), len(want)) && got[i] == want[i] {
						i++
					}
					t.Fatalf("read %d rows (%v), want %d; the first difference at row %d", len(got), err, len(want), i)
				}
			})
		}
		rec.Release()
	}
}

// appendArrowInt appends v to an arrow integer builder of any width.
func appendArrowInt(t *testing.T, b array.Builder, v int64) {
	switch x := b.(type) {
	case *array.Int8Builder:
		x.Append(int8(v))
	case *array.Int16Builder:
		x.Append(int16(v))
	case *array.Int32Builder:
		x.Append(int32(v))
	case *array.Int64Builder:
		x.Append(v)
	case *array.Uint8Builder:
		x.Append(uint8(v))
	case *array.Uint16Builder:
		x.Append(uint16(v))
	case *array.Uint32Builder:
		x.Append(uint32(v))
	case *array.Uint64Builder:
		x.Append(uint64(v))
	default:
		t.Fatalf("no integer builder: %T", b)
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
			if col, err := stringColumn(pf, "s.parquet", "text"); err != nil || !col.optional {
				t.Fatalf("text column: %+v, %v; want a nullable string column", col, err)
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
