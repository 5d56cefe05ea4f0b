package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

func scanAll(t *testing.T, path string) ([]int64, [][]int32) {
	t.Helper()
	var ids []int64
	var docs [][]int32
	err := ScanTokensParquet(path, func(id int64, v []int32) error {
		ids = append(ids, id)
		docs = append(docs, append([]int32{}, v...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, docs
}

// Token tables written in several row groups (with empty documents) read back
// through our column-chunk reader, arrow-go's generic reader and parquet-go.
func TestTokensTableRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000.parquet")
	groups := []TokensTable{
		{IDs: []int64{0, 1, 2}, Offsets: []int64{0, 3, 3, 4}, Flat: []int32{5, 6, 7, 50256}},
		{IDs: []int64{3}, Offsets: []int64{0, 0}},
		{IDs: []int64{4, 5}, Offsets: []int64{0, 2, 3}, Flat: []int32{1, 2, 3}},
	}
	writeTokenGroups(t, path, groups)
	wantIDs := []int64{0, 1, 2, 3, 4, 5}
	wantDocs := [][]int32{{5, 6, 7}, {}, {50256}, {}, {1, 2}, {3}}
	if ids, docs := scanAll(t, path); !reflect.DeepEqual(ids, wantIDs) || !reflect.DeepEqual(docs, wantDocs) {
		t.Errorf("ours: ids %v docs %v", ids, docs)
	}
	var rows []TokensRow
	if err := ScanParquet(path, []string{"id", "ids"}, func(b []TokensRow) error {
		for _, r := range b {
			rows = append(rows, TokensRow{ID: r.ID, IDs: append([]int32{}, r.IDs...)})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if r.ID != wantIDs[i] || !reflect.DeepEqual(append([]int32{}, r.IDs...), wantDocs[i]) {
			t.Errorf("parquet-go row %d = %+v", i, r)
		}
	}
	tbl := arrowTable(t, path)
	if tbl.NumRows() != 6 || tbl.Schema().Field(1).Type.ID() != arrow.LIST {
		t.Errorf("arrow-go sees %d rows, schema %s", tbl.NumRows(), tbl.Schema())
	}
	bad := TokensTable{IDs: []int64{1}, Offsets: []int64{0, 5}, Flat: []int32{1}}
	if err := WriteTokensTable(filepath.Join(t.TempDir(), "x.parquet"), bad); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Errorf("inconsistent table: err = %v", err)
	}
}

// Files from other writers (parquet-go rows; arrow-go with nullable elements)
// read through the column-chunk reader; a null token id is an error.
func TestScanTokensFromOtherWriters(t *testing.T) {
	dir := t.TempDir()
	pg := filepath.Join(dir, "pg.parquet")
	if err := WriteParquet(pg, []TokensRow{{ID: 7, IDs: []int32{1, 2}}, {ID: 8}, {ID: 9, IDs: []int32{3}}}, 2); err != nil {
		t.Fatal(err)
	}
	if ids, docs := scanAll(t, pg); !reflect.DeepEqual(ids, []int64{7, 8, 9}) || !reflect.DeepEqual(docs, [][]int32{{1, 2}, {}, {3}}) {
		t.Errorf("parquet-go file: ids %v docs %v", ids, docs)
	}

	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true}}, nil)
	write := func(name string, fill func(*array.ListBuilder, *array.Int32Builder)) string {
		b := array.NewRecordBuilder(mem, schema)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).AppendValues([]int64{1, 2, 3}, nil)
		lb := b.Field(1).(*array.ListBuilder)
		fill(lb, lb.ValueBuilder().(*array.Int32Builder))
		rec := b.NewRecordBatch()
		defer rec.Release()
		var buf bytes.Buffer
		if err := pqarrow.WriteTable(array.NewTableFromRecords(schema, []arrow.RecordBatch{rec}), &buf, 2, parquet.NewWriterProperties(), pqarrow.DefaultWriterProps()); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, buf.Bytes(), 0o644)
		return p
	}
	ok := write("nullable.parquet", func(lb *array.ListBuilder, vb *array.Int32Builder) {
		lb.Append(true)
		vb.AppendValues([]int32{4, 5}, nil)
		lb.AppendNull() // a null list reads as an empty document
		lb.Append(true)
		vb.Append(6)
	})
	if ids, docs := scanAll(t, ok); !reflect.DeepEqual(ids, []int64{1, 2, 3}) || !reflect.DeepEqual(docs, [][]int32{{4, 5}, {}, {6}}) {
		t.Errorf("nullable file: ids %v docs %v", ids, docs)
	}
	nullElem := write("nullelem.parquet", func(lb *array.ListBuilder, vb *array.Int32Builder) {
		lb.Append(true)
		vb.Append(1)
		lb.Append(true)
		vb.AppendNull()
		lb.Append(true)
	})
	if err := ScanTokensParquet(nullElem, func(int64, []int32) error { return nil }); err == nil || !strings.Contains(err.Error(), "null token id") {
		t.Errorf("null element: err = %v", err)
	}
}

// A token shard's id column is read by the rule of a text shard's
// (documentIDColumn): any integer column, an unsigned one as its values; other
// columns are refused by what they are.
func TestScanTokensIDColumns(t *testing.T) {
	dir := t.TempDir()
	if ids, docs := scanAll(t, writeFile(t, dir, "int32.parquet", []idRow[int32]{{-3, []int32{1}}, {9, nil}})); !reflect.DeepEqual(ids, []int64{-3, 9}) || !reflect.DeepEqual(docs, [][]int32{{1}, {}}) {
		t.Errorf("int32 ids: %v %v", ids, docs)
	}
	if ids, _ := scanAll(t, writeFile(t, dir, "uint32.parquet", []idRow[uint32]{{4_000_000_000, []int32{1}}})); !reflect.DeepEqual(ids, []int64{4_000_000_000}) {
		t.Errorf("uint32 ids: %v", ids)
	}
	wide := writeFile(t, dir, "wide.parquet", []TokensRow{{ID: 5 << 33, IDs: []int32{1}}})
	data, err := os.ReadFile(wide)
	if err != nil {
		t.Fatal(err)
	}
	narrowed := filepath.Join(dir, "narrowed.parquet") // an INT64 id annotated INT(32)
	os.WriteFile(narrowed, withFooter(t, data, func(md *format.FileMetaData) {
		for i := range md.Schema {
			if md.Schema[i].Name == "id" {
				md.Schema[i].LogicalType = format.LogicalType{Value: &format.IntType{BitWidth: 32, IsSigned: true}}
			}
		}
	}), 0o644)
	for _, c := range []struct{ path, want string }{
		{writeFile(t, dir, "string.parquet", []idRow[string]{{"a", nil}}), `column "id" is BYTE_ARRAY STRING, not an integer column (INT64 or INT32, unnested)`},
		{narrowed, `column "id" is INT32 INT(32,true) stored as INT64: its logical type does not fit its physical type`},
		{writeFile(t, dir, "uint64.parquet", []idRow[uint64]{{1 << 63, nil}}), "column id: document id 9223372036854775808 at row 0 is over 2^63-1"},
		{writeFile(t, dir, "null.parquet", []idRow[*int64]{{nil, []int32{1}}}), "column id: a null document id near row 0"},
	} {
		err := ScanTokensParquet(c.path, func(int64, []int32) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.path, err, c.want)
		}
	}
}

// idRow is a token shard's row with an id of type T (a pointer: nullable).
type idRow[T any] struct {
	ID  T       `parquet:"id"`
	IDs []int32 `parquet:"ids,list"`
}

// writeFile writes rows as the Parquet file name in dir (row groups of 10
// rows) and returns its path.
func writeFile[T any](t *testing.T, dir, name string, rows []T) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := WriteParquet(p, rows, 10); err != nil {
		t.Fatal(err)
	}
	return p
}

// Truncated or corrupted token shards are errors naming the file, never panics.
func TestScanTokensCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	flat := make([]int32, 5000)
	for i := range flat {
		flat[i] = int32(i)
	}
	if err := WriteTokensTable(path, TokensTable{IDs: []int64{0, 1}, Offsets: []int64{0, 2500, 5000}, Flat: flat}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"footer":    append(append([]byte{}, data[:len(data)-12]...), []byte("xxxxxxxxPAR1")...),
		"pages":     append(append(append([]byte{}, data[:4]...), bytes.Repeat([]byte{0xff}, 64)...), data[68:]...),
	} {
		p := filepath.Join(dir, name+".parquet")
		os.WriteFile(p, bad, 0o644)
		err := ScanTokensParquet(p, func(int64, []int32) error { return nil })
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want an error naming %s", name, err, p)
		}
	}
}

// FuzzScanTokens: a damaged token shard is read or refused with an error,
// never a panic or a hang; the intact shards read back exactly, and a strict
// prefix of one (a truncated copy) is always refused. The page reader is
// never more lenient than parquet-go's row reader, and where both read a
// file they read the same documents (it may refuse more: a list that
// continues a row never started, levels and values that disagree).
func FuzzScanTokens(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good.parquet")
	if err := WriteTokensTable(good, TokensTable{IDs: []int64{0, 1, 2}, Offsets: []int64{0, 3, 3, 5}, Flat: []int32{1, 2, 3, 4, 5}}); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	intact := map[string]int{string(data): 3}
	f.Add(data)
	f.Add(data[:len(data)-9])
	small := [][]int32{{7, 7, 8}, {}, {9}, {7}}
	for i, props := range []*parquet.WriterProperties{
		parquet.NewWriterProperties(), // dictionary pages
		parquet.NewWriterProperties(parquet.WithDictionaryDefault(false), parquet.WithDataPageVersion(parquet.DataPageV2)),
	} {
		p := filepath.Join(dir, fmt.Sprint("arrow", i, ".parquet"))
		writeArrowTokens(f, p, small, i == 1, props)
		b, _ := os.ReadFile(p)
		intact[string(b)] = len(small)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "t.parquet")
		os.WriteFile(path, b, 0o644)
		var ids []int64
		var docs [][]int32
		err := ScanTokensParquet(path, func(id int64, v []int32) error {
			ids, docs = append(ids, id), append(docs, append([]int32{}, v...))
			return nil
		})
		if n, ok := intact[string(b)]; ok && (err != nil || len(docs) != n) {
			t.Fatalf("intact shard: %d docs, %v", len(docs), err)
		}
		if len(b) < len(data) && bytes.Equal(b, data[:len(b)]) && err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte shard was read without error", len(b), len(data))
		}
		if err != nil {
			return
		}
		var rowIDs []int64
		var rowDocs [][]int32
		rowErr := ScanParquet(path, []string{"id", "ids"}, func(rows []TokensRow) error {
			for _, r := range rows {
				rowIDs, rowDocs = append(rowIDs, r.ID), append(rowDocs, append([]int32{}, r.IDs...))
			}
			return nil
		})
		if rowErr != nil {
			t.Fatalf("read %d documents of a file the row reader refuses: %v", len(docs), rowErr)
		}
		id := rowReaderID(b) // an unsigned INT32 id: the row reader extends its sign
		for i := range rowIDs {
			rowIDs[i] = id(rowIDs[i])
		}
		// The row reader fills TokensRow by name: under a list whose element
		// is named otherwise it reads zeros (regression input
		// a8fb1287c4edf454), and under a repeated group named otherwise
		// empty lists (9d3961bff990e0da), where the page reader takes the
		// list's one leaf, whatever its names. So the lists are compared
		// only under the names TokensRow uses.
		if !reflect.DeepEqual(ids, rowIDs) || len(docs) != len(rowDocs) ||
			(listLeaf(t, b) == "ids.list.element" && !reflect.DeepEqual(docs, rowDocs)) {
			t.Fatalf("%d documents, the row reader %d: they differ", len(docs), len(rowDocs))
		}
	})
}

// listLeaf is the path of the token list's leaf column in the Parquet file b.
func listLeaf(t *testing.T, b []byte) string {
	pf, err := openParquetAt(bytes.NewReader(b), int64(len(b)), "t.parquet")
	if err != nil {
		t.Fatal(err)
	}
	c, err := findTokenColumns(pf, "t.parquet")
	if err != nil {
		t.Fatal(err)
	}
	return c.listPath
}

// writeTokenGroups writes groups as a tokens/v1 shard at path, one row group
// each.
func writeTokenGroups(t testing.TB, path string, groups []TokensTable) {
	t.Helper()
	err := atomicfile.Write(path, func(w io.Writer) error {
		tw, err := NewTokensWriter(w, path)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if err := tw.WriteTable(g); err != nil {
				return err
			}
		}
		return tw.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestListLevels(t *testing.T) {
	tests := []struct {
		name     string
		offsets  []int64
		def, rep []int16
	}{
		{"no documents", []int64{0}, []int16{}, []int16{}},
		{"one empty", []int64{0, 0}, []int16{0}, []int16{0}},
		{"one of three", []int64{0, 3}, []int16{1, 1, 1}, []int16{0, 1, 1}},
		{"empty between", []int64{0, 2, 2, 3}, []int16{1, 1, 0, 1}, []int16{0, 1, 0, 0}},
		{"empty first and last", []int64{0, 0, 1, 1}, []int16{0, 1, 0}, []int16{0, 0, 0}},
	}
	// Reused storage holds the last call's zeros: every entry must be set again.
	stale := func() []int16 { return make([]int16, 0, 8) }
	def, rep := stale(), stale()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def, rep = listLevels(tc.offsets, def, rep)
			if !reflect.DeepEqual(def, tc.def) || !reflect.DeepEqual(rep, tc.rep) {
				t.Errorf("def %v rep %v, want %v %v", def, rep, tc.def, tc.rep)
			}
		})
	}
}

// A row group far larger than a data page (dataPageSize), with documents and
// empty documents across page boundaries, reads back the same through ours,
// parquet-go and arrow-go's generic reader.
func TestTokensTableManyPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000.parquet")
	var g TokensTable
	g.Offsets = []int64{0}
	var want [][]int32
	for d := range 400 {
		n := (d * 7919) % 1500
		if d%9 == 0 {
			n = 0
		}
		doc := make([]int32, n)
		for j := range doc {
			doc[j] = int32((d*1000 + j) % 50257)
		}
		g.IDs = append(g.IDs, int64(d))
		g.Flat = append(g.Flat, doc...)
		g.Offsets = append(g.Offsets, int64(len(g.Flat)))
		want = append(want, doc)
	}
	if pages := len(g.Flat) * 4 / dataPageSize; pages < 10 {
		t.Fatalf("only %d pages of values: the test needs more", pages)
	}
	writeTokenGroups(t, path, []TokensTable{g, g})
	want = append(want, want...)
	if _, docs := scanAll(t, path); !reflect.DeepEqual(docs, normEmpty(want)) {
		t.Errorf("ours: %d documents differ from what was written", len(docs))
	}
	i := 0
	if err := ScanParquet(path, []string{"id", "ids"}, func(b []TokensRow) error {
		for _, r := range b {
			if !reflect.DeepEqual(append([]int32{}, r.IDs...), normEmpty(want)[i]) || r.ID != int64(i%400) {
				t.Errorf("parquet-go row %d: id %d, %d ids", i, r.ID, len(r.IDs))
			}
			i++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tbl := arrowTable(t, path)
	if tbl.NumRows() != 800 {
		t.Errorf("arrow-go sees %d rows, want 800", tbl.NumRows())
	}
}

// normEmpty gives empty documents the form scanAll returns ([]int32{}).
func normEmpty(docs [][]int32) [][]int32 {
	out := make([][]int32, len(docs))
	for i, d := range docs {
		out[i] = append([]int32{}, d...)
	}
	return out
}

// arrowTable reads the Parquet file at path with arrow-go's generic reader
// (pqarrow); the table is released when the test ends.
func arrowTable(t *testing.T, path string) arrow.Table {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := readArrowTable(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Release)
	return tbl
}

// readArrowTable reads the Parquet file data with arrow-go's generic reader
// (pqarrow); the caller releases the table.
func readArrowTable(data []byte) (arrow.Table, error) {
	mem := memory.NewGoAllocator()
	return pqarrow.ReadTable(context.Background(), bytes.NewReader(data), parquet.NewReaderProperties(mem), pqarrow.ArrowReadProperties{}, mem)
}

// ScanTokensTablesAt reads the token layouts other writers produce as
// parquet-go's row reader does: arrow-go with dictionary pages (and its
// fallback to plain pages mid-chunk), data page v2, Snappy, nullable lists,
// many small pages, parquet-go's own writer.
func TestScanTokensLayouts(t *testing.T) {
	docs := make([][]int32, 700)
	for d := range docs {
		n := (d * 37) % 90
		if d%11 == 0 {
			n = 0
		}
		docs[d] = make([]int32, n)
		for j := range docs[d] {
			docs[d][j] = int32(1000 + (d*j)%(50+d)) // repeats for the dictionary, then more values
		}
	}
	base := []parquet.WriterProperty{parquet.WithMaxRowGroupLength(300)}
	tests := []struct {
		name     string
		nullable bool
		props    []parquet.WriterProperty
	}{
		{"dictionary", false, nil},
		{"dictionary falling back to plain", false, []parquet.WriterProperty{parquet.WithDictionaryPageSizeLimit(256), parquet.WithDataPageSize(512)}},
		{"plain v2 snappy", false, []parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithCompression(compress.Codecs.Snappy)}},
		{"nullable lists, small pages", true, []parquet.WriterProperty{parquet.WithDictionaryDefault(false), parquet.WithDataPageSize(300)}},
		{"nullable lists, dictionary v2", true, []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.parquet")
			writeArrowTokens(t, path, docs, tc.nullable, parquet.NewWriterProperties(append(base, tc.props...)...))
			wantTokensLikeRowReader(t, path, len(docs))
		})
	}
	t.Run("parquet-go writer", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.parquet")
		rows := make([]TokensRow, len(docs))
		for i, d := range docs {
			rows[i] = TokensRow{ID: int64(i), IDs: d}
		}
		if err := WriteParquet(path, rows, 256); err != nil {
			t.Fatal(err)
		}
		wantTokensLikeRowReader(t, path, len(docs))
	})
}

// writeArrowTokens writes docs (ids 0, 1, ...; every fifth list null when
// nullable) through pqarrow with props.
func writeArrowTokens(t testing.TB, path string, docs [][]int32, nullable bool, props *parquet.WriterProperties) {
	t.Helper()
	mem := memory.NewGoAllocator()
	listType := arrow.DataType(arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32))
	if nullable {
		listType = arrow.ListOf(arrow.PrimitiveTypes.Int32)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ids", Type: listType, Nullable: nullable}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	lb := b.Field(1).(*array.ListBuilder)
	vb := lb.ValueBuilder().(*array.Int32Builder)
	for i, d := range docs {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if nullable && i%5 == 4 {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		vb.AppendValues(d, nil)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(array.NewTableFromRecords(schema, []arrow.RecordBatch{rec}), &buf, 1<<20, props, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantTokensLikeRowReader checks that ScanTokensParquet and parquet-go's row
// reader (ScanParquet into TokensRow) read the same n documents from path.
func wantTokensLikeRowReader(t *testing.T, path string, n int) {
	t.Helper()
	var want [][]int32
	var wantIDs []int64
	if err := ScanParquet(path, []string{"id", "ids"}, func(b []TokensRow) error {
		for _, r := range b {
			wantIDs, want = append(wantIDs, r.ID), append(want, append([]int32{}, r.IDs...))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids, docs := scanAll(t, path)
	if len(docs) != n || !reflect.DeepEqual(ids, wantIDs) || !reflect.DeepEqual(docs, want) {
		t.Fatalf("%d documents, the row reader %d (of %d written); equal ids %v, equal documents %v",
			len(docs), len(want), n, reflect.DeepEqual(ids, wantIDs), reflect.DeepEqual(docs, want))
	}
}

// A damaged page whose levels put an empty list inside a document (repetition
// level 1, definition level 0) is refused; parquet-go's row reader reads a
// zero there, and the page reader once dropped the entry.
func TestScanTokensEntryInsideList(t *testing.T) {
	for _, c := range []struct{ input, want string }{
		{"0749e4663b3d0a23", "t.parquet: row group 0: column ids.list.element: document 2: an entry inside its list with definition level 0"},
		// The reverse: a document opened as an empty list, then an id in
		// it (parquet-go's row reader read it empty, arrow-go as the ids).
		{"f87a5fc872776f27", "t.parquet: row group 0: column ids.list.element: document 0: an empty or null list continued by an entry"},
	} {
		data := fuzzInput(t, "FuzzScanTokens", c.input)
		err := ScanTokensTablesAt(bytes.NewReader(data), int64(len(data)), "t.parquet", func(TokensTable) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.input, err, c.want)
		}
	}
}

// A token list chunk whose footer claims a huge size is refused (its pages
// are guarded up to the file's end, where the footer is no page) without
// sizing the table by the claim.
func TestScanTokensChunkSizeClaim(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.parquet")
	flat := make([]int32, 3000)
	for i := range flat {
		flat[i] = int32(i)
	}
	writeTokenGroups(t, path, []TokensTable{{IDs: []int64{0, 1}, Offsets: []int64{0, 1000, 3000}, Flat: flat}})
	good, _ := os.ReadFile(path)
	bad := withFooter(t, good, func(md *format.FileMetaData) {
		md.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = 1 << 32 // 4 GB
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	err := ScanTokensTablesAt(bytes.NewReader(bad), int64(len(bad)), "t.parquet", func(t TokensTable) error {
		n += len(t.Flat)
		return nil
	})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.HasPrefix(err.Error(), "t.parquet: ") {
		t.Errorf("read %d tokens, err %v; want an error naming the file", n, err)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 4<<20 {
		t.Errorf("allocated %d bytes for a %d-byte file", a, len(bad))
	}
}

// withFooter returns the Parquet file data with its footer's metadata changed
// by edit (re-encoded).
func withFooter(t *testing.T, data []byte, edit func(*format.FileMetaData)) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	start := len(data) - 8 - n
	var md format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), data[start:start+n], &md); err != nil {
		t.Fatal(err)
	}
	edit(&md)
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &md)
	if err != nil {
		t.Fatal(err)
	}
	out := append(append([]byte(nil), data[:start]...), b...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
	return append(out, "PAR1"...)
}

// A leaf column annotated with a group's type (MAP, LIST), which a damaged
// file can state, is refused naming it: parquet-go panics on its Kind, and
// the readers used to report that panic as corrupt data. (The fuzz inputs
// that found it, FuzzScanText ee44442da7512043 and FuzzReadDocsParquet
// 6b4f51dde25b1bc3, are now refused earlier, for a codec Parquet does not
// define.)
func TestLeafAnnotatedGroupType(t *testing.T) {
	dir := t.TempDir()
	annotate := func(data []byte, column string, lt format.LogicalType) string {
		p := filepath.Join(dir, fmt.Sprintf("%s-%s.parquet", column, lt.String()))
		if err := os.WriteFile(p, withFooter(t, data, func(md *format.FileMetaData) {
			for i := range md.Schema {
				if md.Schema[i].Name == column {
					md.Schema[i].LogicalType = lt
				}
			}
		}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	texts := writeRows(t, textDocs(6, 2), 10)
	tokens, err := os.ReadFile(writeFile(t, dir, "tokens.parquet", []TokensRow{{ID: 1, IDs: []int32{4, 5}}}))
	if err != nil {
		t.Fatal(err)
	}
	mapType := format.LogicalType{Value: new(format.MapType)}
	listType := format.LogicalType{Value: new(format.ListType)}
	for _, c := range []struct {
		name, path, want string
		read             func(path string) error
	}{
		{"ScanText id", annotate(texts, "id", mapType), `column "id" is a leaf annotated MAP, which only a group can be, not an integer column`,
			func(p string) error {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				return ScanTextAt(bytes.NewReader(data), int64(len(data)), p, func(TextBatch) error { return nil })
			}},
		{"ScanTexts text", annotate(texts, "text", listType), `column "text" is a leaf annotated LIST, which only a group can be, not a string column`,
			func(p string) error { return ScanTexts(p, func([]string) error { return nil }) }},
		{"ReadDocs text", annotate(texts, "text", mapType), `column "text" is a leaf annotated MAP, which only a group can be, not a string column`,
			func(p string) error { return ReadDocs(p, "text", ByLine, func(string) error { return nil }) }},
		{"ScanTokensParquet id", annotate(tokens, "id", listType), `column "id" is a leaf annotated LIST, which only a group can be, not an integer column`,
			func(p string) error { return ScanTokensParquet(p, func(int64, []int32) error { return nil }) }},
		{"ScanTokensParquet element", annotate(tokens, "element", mapType), `column "ids.list.element" is a leaf annotated MAP with repetition depth 1, want a list of int32`,
			func(p string) error { return ScanTokensParquet(p, func(int64, []int32) error { return nil }) }},
	} {
		err := c.read(c.path)
		if err == nil || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
