package datasets

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go/format"
)

var sp = Specials{BOS: 100, EOS: 101, PAD: 0}

func wrap(t *testing.T, opts WrapOptions, docs ...[]int32) ([][]int32, *Wrapper) {
	t.Helper()
	var blocks [][]int32
	w, err := NewWrapper(opts, sp, func(r PackedRow) error {
		blocks = append(blocks, append([]int32(nil), r.InputIDs...)) // the row is reused
		for _, m := range r.AttentionMask {
			if m != 1 {
				t.Fatalf("wrap mode mask %v", r.AttentionMask)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return blocks, w
}

func TestWrapMode(t *testing.T) {
	// L = 6: blocks of 4 content tokens; documents end with EOS (101).
	blocks, w := wrap(t, WrapOptions{Length: 6}, []int32{1, 2, 3}, []int32{4, 5}, []int32{6, 7, 8, 9, 10})
	want := [][]int32{
		{100, 1, 2, 3, 101, 101}, // doc1 + EOS fill the block; the block gets its own EOS
		{100, 4, 5, 101, 6, 101}, // doc3 continues across the boundary (BOS/EOS mid-document)
		{100, 7, 8, 9, 10, 101},
	}
	if !reflect.DeepEqual(blocks, want) {
		t.Errorf("blocks = %v\nwant %v", blocks, want)
	}
	if w.Dropped != 1 { // doc3's EOS is left over
		t.Errorf("dropped %d, want 1", w.Dropped)
	}
}

func TestWrapReferenceGroups(t *testing.T) {
	// GroupDocs 2: docs 1-2 (3+1+2+1 = 7 tokens) give one block and drop 3 tokens;
	// doc 3 (5+1 = 6) gives one block and drops 2.
	blocks, w := wrap(t, WrapOptions{Length: 6, GroupDocs: 2}, []int32{1, 2, 3}, []int32{4, 5}, []int32{6, 7, 8, 9, 10})
	want := [][]int32{{100, 1, 2, 3, 101, 101}, {100, 6, 7, 8, 9, 101}}
	if !reflect.DeepEqual(blocks, want) || w.Dropped != 5 {
		t.Errorf("blocks = %v (dropped %d)\nwant %v (dropped 5)", blocks, w.Dropped, want)
	}
	if _, err := NewWrapper(WrapOptions{Length: 2}, sp, nil); err == nil {
		t.Error("length 2 accepted")
	}
}

func TestPadMode(t *testing.T) {
	cases := []struct {
		ids      []int32
		wantIDs  []int32
		wantMask []int8
	}{
		{[]int32{7, 8}, []int32{100, 7, 8, 101, 0, 0}, []int8{1, 1, 1, 1, 0, 0}},
		{[]int32{1, 2, 3, 4, 5, 6, 7}, []int32{100, 1, 2, 3, 4, 101}, []int8{1, 1, 1, 1, 1, 1}},
		{nil, []int32{100, 101, 0, 0, 0, 0}, []int8{1, 1, 0, 0, 0, 0}},
	}
	for _, c := range cases {
		r := PadBlock(c.ids, 6, sp)
		if !reflect.DeepEqual(r.InputIDs, c.wantIDs) || !reflect.DeepEqual(r.AttentionMask, c.wantMask) {
			t.Errorf("PadBlock(%v) = %v %v, want %v %v", c.ids, r.InputIDs, r.AttentionMask, c.wantIDs, c.wantMask)
		}
	}
}

// The Arrow view and the Parquet view of the same blocks agree.
func TestArrowAndParquetAgree(t *testing.T) {
	dir := t.TempDir()
	var rows []PackedRow
	for i := 0; i < 2500; i++ {
		rows = append(rows, PadBlock([]int32{int32(i), int32(i * 7 % 50)}[:1+i%2], 8, sp))
	}
	writePacked(t, dir, "b", 8, rows)
	a, err := OpenPackedArrow(filepath.Join(dir, "b.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fromParquet := readPackedParquet(t, filepath.Join(dir, "b-00000.parquet"))
	if a.NumRows() != len(rows) || len(fromParquet) != len(rows) || a.L != 8 {
		t.Fatalf("rows: arrow %d, parquet %d, want %d", a.NumRows(), len(fromParquet), len(rows))
	}
	for i := range rows {
		ids, mask := a.Row(i)
		if !reflect.DeepEqual(ids, fromParquet[i].InputIDs) || !reflect.DeepEqual(mask, fromParquet[i].AttentionMask) || !reflect.DeepEqual(ids, rows[i].InputIDs) {
			t.Fatalf("row %d: arrow %v %v, parquet %v %v", i, ids, mask, fromParquet[i].InputIDs, fromParquet[i].AttentionMask)
		}
	}
}

// PackedWriter over several record batches / row groups: the Arrow file, the
// Parquet file (read by parquet-go) and the input agree; a block of the wrong
// length is refused.
func TestPackedWriterGroups(t *testing.T) {
	dir := t.TempDir()
	const L = 2048 // 128 blocks a group
	w, err := NewPackedWriter(dir, "valid", L)
	if err != nil {
		t.Fatal(err)
	}
	var rows []PackedRow
	for i := 0; i < 300; i++ {
		doc := make([]int32, (i*37)%(L+50))
		for j := range doc {
			doc[j] = int32((i + j) % 50000)
		}
		rows = append(rows, PadBlock(doc, L, sp))
		if err := w.Write(rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(PackedRow{InputIDs: make([]int32, 3), AttentionMask: make([]int8, 3)}); err == nil || !strings.Contains(err.Error(), "want 2048") {
		t.Errorf("short block: err = %v", err)
	}
	if err := w.Close(); err != nil || w.Rows != 300 {
		t.Fatalf("close: %v, rows %d", err, w.Rows)
	}
	a, err := OpenPackedArrow(filepath.Join(dir, "valid.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fromParquet := readPackedParquet(t, filepath.Join(dir, "valid-00000.parquet"))
	if a.NumRows() != 300 || len(fromParquet) != 300 {
		t.Fatalf("rows: arrow %d, parquet %d", a.NumRows(), len(fromParquet))
	}
	for i, r := range rows {
		ids, mask := a.Row(i)
		if !reflect.DeepEqual(ids, r.InputIDs) || !reflect.DeepEqual(mask, r.AttentionMask) ||
			!reflect.DeepEqual(fromParquet[i], r) {
			t.Fatalf("row %d differs", i)
		}
	}
}

// writePacked writes rows through PackedWriter as dir/<split>.arrow and
// dir/<split>-00000.parquet.
func writePacked(t *testing.T, dir, split string, L int, rows []PackedRow) {
	t.Helper()
	w, err := NewPackedWriter(dir, split, L)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// readPackedParquet reads packed blocks through parquet-go.
func readPackedParquet(t *testing.T, path string) []PackedRow {
	t.Helper()
	var rows []PackedRow
	err := ScanParquet(path, []string{"input_ids", "attention_mask"}, func(b []PackedRow) error {
		for _, r := range b {
			rows = append(rows, PackedRow{InputIDs: append([]int32(nil), r.InputIDs...), AttentionMask: append([]int8(nil), r.AttentionMask...)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// CountDocs (the hold-out's first pass) agrees with ReadDocs on JSON lines with
// blank lines, gzipped or not, and on text.
func TestCountDocsMatchesReadDocs(t *testing.T) {
	dir := t.TempDir()
	jsonl := "{\"text\": \"a\"}\n\n   \n{\"text\": \"b c\"}\n{\"text\": \"\"}\n"
	files := map[string][]byte{"d.jsonl": []byte(jsonl), "t.txt": []byte("one\ntwo\n\nthree\n")}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(jsonl))
	zw.Close()
	files["d.jsonl.gz"] = gz.Bytes()
	for name, data := range files {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		var read int64
		if err := ReadDocs(path, "text", ByLine, func(string) error { read++; return nil }); err != nil {
			t.Fatal(err)
		}
		n, err := CountDocs(path, "text", ByLine)
		if err != nil || n != read || read == 0 {
			t.Errorf("%s: CountDocs %d, %v; ReadDocs %d", name, n, err, read)
		}
	}
}

// JSON lines: the text field is read whatever else a row holds; a missing or
// non-string field is an error naming file and line; null is an empty document.
func TestReadJSONLFields(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.jsonl")
	os.WriteFile(path, []byte(`{"id": 1, "text": "a\nb", "meta": {"text": "nested"}}`+"\n"+`{"text": null}`+"\n"), 0o644)
	var docs []string
	if err := ReadDocs(path, "text", ByLine, func(s string) error { docs = append(docs, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0] != "a\nb" || docs[1] != "" {
		t.Errorf("docs %q", docs)
	}
	for body, want := range map[string]string{
		`{"body": "x"}`: `d.jsonl:1: no field "text"`,
		`{"text": 5}`:   `d.jsonl:1: field "text" is not a string`,
		`{"text": "x"`:  `d.jsonl:1: unexpected end`,
		`["text", "x"]`: `d.jsonl:1: json: cannot unmarshal array`,
	} {
		os.WriteFile(path, []byte(body+"\n"), 0o644)
		err := ReadDocs(path, "text", ByLine, func(string) error { return nil })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", body, err, want)
		}
	}
}

// Parquet sources: the chosen column is read as documents whatever else a row
// holds, a null as an empty document (as in JSON lines); a column that is
// missing, not a string, a list or a struct is an error naming file, column
// and what it is.
func TestReadParquetColumns(t *testing.T) {
	type content struct {
		URL     string  `parquet:"url"`
		Content *string `parquet:"content,optional"`
	}
	type dictText struct {
		Text *string `parquet:"text,optional,dict"`
	}
	type typed struct {
		ID    int64    `parquet:"id"`
		Tags  []string `parquet:"tags,list"`
		Words []string `parquet:"words"`
		Meta  struct {
			Text string `parquet:"text"`
		} `parquet:"meta"`
		Kind string `parquet:"kind,enum"`
		Doc  string `parquet:"doc,json"`
	}
	a, b := "a\nb", ""
	tests := []struct {
		name, column string
		data         []byte
		want         []string
		err          string
	}{
		{"nullable column of another name", "content", writePaged(t, []content{{"u", &a}, {"v", nil}, {"w", &b}, {"x", nil}}, 3, 256), []string{"a\nb", "", "", ""}, ""},
		{"nullable, dictionary", "text", writeRows(t, []dictText{{&a}, {nil}, {&a}}, 2), []string{"a\nb", "", "a\nb"}, ""},
		{"missing", "text", writeRows(t, []content{{"u", &a}}, 2), nil, `src.parquet: missing column "text" (has [url content])`},
		{"an integer", "id", writeRows(t, []typed{{ID: 1}}, 2), nil, `src.parquet: column "id" is INT64 INT(64,true), not a string column`},
		{"a list", "tags", writeRows(t, []typed{{Tags: []string{"x"}}}, 2), nil, `src.parquet: column "tags" is a group (a list or a struct), not a string column`},
		{"a struct", "meta", writeRows(t, []typed{{ID: 1}}, 2), nil, `src.parquet: column "meta" is a group`},
		{"repeated", "words", writeRows(t, []typed{{Words: []string{"x", "y"}}}, 2), nil, `src.parquet: column "words" is repeated BYTE_ARRAY STRING, not a string column`},
		{"an enum", "kind", writeRows(t, []typed{{Kind: "k"}, {Kind: ""}}, 2), []string{"k", ""}, ""},
		{"JSON", "doc", writeRows(t, []typed{{Doc: `{"a": 1}`}}, 2), []string{`{"a": 1}`}, ""},
		{"BSON", "doc", withFooter(t, writeRows(t, []typed{{Doc: "\x05\x00\x00\x00\x00"}}, 2), func(md *format.FileMetaData) {
			for i := range md.Schema {
				if md.Schema[i].Name == "doc" {
					md.Schema[i].LogicalType = format.LogicalType{Value: &format.BsonType{}}
					md.Schema[i].ConvertedType.Valid = false
				}
			}
		}), nil, `src.parquet: column "doc" is BYTE_ARRAY BSON, not a string column`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "src.parquet")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			var docs []string
			err := ReadDocs(path, tc.column, ByLine, func(s string) error { docs = append(docs, s); return nil })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), path) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(docs, tc.want) {
				t.Fatalf("ReadDocs = %q, %v; want %q", docs, err, tc.want)
			}
			if n, err := CountDocs(path, tc.column, ByLine); err != nil || n != int64(len(docs)) {
				t.Errorf("CountDocs = %d, %v; ReadDocs read %d", n, err, len(docs))
			}
		})
	}
}
