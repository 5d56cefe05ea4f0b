package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/format"
)

// textDocs are documents with empty texts, a NUL, invalid UTF-8 and texts of
// long words repeated (longer than a page at 5,000), so a shard has several
// row groups and pages.
func textDocs(n, long int) []TextRow {
	rows := make([]TextRow, n)
	for i := range rows {
		var text string
		switch i % 7 {
		case 0:
			text = ""
		case 1:
			text = "a\x00b\xff"
		case 2:
			text = strings.Repeat(fmt.Sprintf("word%d ", i), long)
		default:
			text = fmt.Sprintf("document %d: the quick brown fox", i)
		}
		rows[i] = TextRow{ID: int64(i*3 - 7), Text: text}
	}
	return rows
}

// writeRows writes rows of any struct type as one Parquet file with row
// groups of rowGroup rows and pages of about 16 KB.
func writeRows[T any](t testing.TB, rows []T, rowGroup int64) []byte {
	return writePaged(t, rows, rowGroup, 16<<10)
}

func writePaged[T any](t testing.TB, rows []T, rowGroup int64, pageBytes int) []byte {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[T](&b, parquet.Compression(&snappy.Codec{}), parquet.MaxRowsPerRowGroup(rowGroup), parquet.PageBufferSize(pageBytes))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// scanTextAll reads data with ScanTextAt, keeping every batch until the end
// (a batch must not change after its call).
func scanTextAll(data []byte) ([]TextRow, error) {
	var batches []TextBatch
	err := ScanTextAt(bytes.NewReader(data), int64(len(data)), "s.parquet", func(b TextBatch) error {
		if len(b.IDs) != len(b.Texts) {
			return fmt.Errorf("batch of %d ids and %d texts", len(b.IDs), len(b.Texts))
		}
		batches = append(batches, b)
		return nil
	})
	var rows []TextRow
	for _, b := range batches {
		for i := range b.IDs {
			rows = append(rows, TextRow{ID: b.IDs[i], Text: b.Texts[i]})
		}
	}
	return rows, err
}

// scanRowsAll reads data with the row reader, the reference for ScanTextAt.
// The row reader reads an unsigned 32-bit id over 2^31-1 as a negative
// number: such ids are given their value (rowReaderID).
func scanRowsAll(data []byte) ([]TextRow, error) {
	var rows []TextRow
	err := ScanParquetAt(bytes.NewReader(data), int64(len(data)), "s.parquet", []string{"id", "text"}, func(b []TextRow) error {
		for _, r := range b {
			rows = append(rows, TextRow{ID: r.ID, Text: strings.Clone(r.Text)})
		}
		return nil
	})
	id := rowReaderID(data)
	for i := range rows {
		rows[i].ID = id(rows[i].ID)
	}
	return rows, err
}

// rowReaderID returns what a document id the row reader read from data is:
// the same, except in an unsigned column of INT32 values, where the row
// reader extends the sign of a uint32 over 2^31-1.
func rowReaderID(data []byte) func(int64) int64 {
	same := func(id int64) int64 { return id }
	pf, err := openParquetAt(bytes.NewReader(data), int64(len(data)), "s.parquet")
	if err != nil {
		return same
	}
	leaf, ok := pf.Schema().Lookup("id")
	if !ok {
		return same
	}
	if kind, isLeaf := leafKind(leaf); !isLeaf || kind != parquet.Int32 {
		return same
	}
	lt := leaf.Node.Type().LogicalType()
	if lt == nil {
		return same
	}
	if it, isInt := lt.Value.(*format.IntType); !isInt || it.IsSigned {
		return same
	}
	return func(id int64) int64 { return int64(uint32(id)) }
}

// scanTextsAll reads data with ScanTextsAt, keeping every batch until the end.
func scanTextsAll(data []byte) ([]string, error) {
	var batches [][]string
	err := ScanTextsAt(bytes.NewReader(data), int64(len(data)), "s.parquet", func(b []string) error {
		batches = append(batches, b)
		return nil
	})
	return slices.Concat(batches...), err
}

// textRowsAll reads the texts of data with the row reader, the reference for
// ScanTextsAt.
func textRowsAll(data []byte) ([]string, error) {
	var texts []string
	err := ScanParquetAt(bytes.NewReader(data), int64(len(data)), "s.parquet", []string{"text"}, func(b []textOnlyRow) error {
		for _, r := range b {
			texts = append(texts, strings.Clone(r.Text))
		}
		return nil
	})
	return texts, err
}

// textsOf is the texts of rows.
func textsOf(rows []TextRow) []string {
	texts := make([]string, len(rows))
	for i, r := range rows {
		texts[i] = r.Text
	}
	return texts
}

// textOnlyRow is a row of the column text alone (the row reader's reading of
// it is ScanTextsAt's reference).
type textOnlyRow struct {
	Text string `parquet:"text"`
}

type textRowOptional struct {
	ID   *int64  `parquet:"id,optional"`
	Text *string `parquet:"text,optional"`
}

// textRowNullText is a required id and a nullable text, one dictionary-encoded.
type textRowNullText struct {
	ID   int64   `parquet:"id"`
	Text *string `parquet:"text,optional"`
}

type textRowNullDict struct {
	ID   int64   `parquet:"id"`
	Text *string `parquet:"text,optional,dict"`
}

type textRowDict struct {
	ID   int64  `parquet:"id"`
	Text string `parquet:"text,dict"`
}

type textRowDelta struct {
	ID   int64  `parquet:"id,delta"`
	Text string `parquet:"text,delta"`
}

type textRowInt32 struct {
	ID   int32  `parquet:"id"`
	Text string `parquet:"text"`
}

type textRowExtra struct {
	Source string `parquet:"source"`
	Text   string `parquet:"text"`
	ID     int64  `parquet:"id"`
}

type textRowNullID struct {
	ID   *int64 `parquet:"id,optional"`
	Text string `parquet:"text"`
}

type textRowUint32 struct {
	ID   uint32 `parquet:"id"`
	Text string `parquet:"text"`
}

type textRowInt32Dict struct {
	ID   int32  `parquet:"id,dict"`
	Text string `parquet:"text"`
}

type textRowUint32Dict struct {
	ID   uint32 `parquet:"id,dict"`
	Text string `parquet:"text"`
}

type textRowUint64 struct {
	ID   uint64 `parquet:"id"`
	Text string `parquet:"text"`
}

// ScanTextAt and ScanTextsAt read what the row reader reads, page by page:
// the download stage's layout, dictionary and delta encodings, extra
// columns, nullable text and id columns, an INT32 id; for ScanTextsAt,
// which reads the column text alone, also no id column or one of another
// type.
func TestScanTextLayouts(t *testing.T) {
	docs := textDocs(300, 5000)
	optional := make([]textRowOptional, len(docs))
	nullID := make([]textRowNullID, len(docs))
	dict := make([]textRowDict, len(docs))
	delta := make([]textRowDelta, len(docs))
	narrow := make([]textRowInt32, len(docs))
	narrowDict := make([]textRowInt32Dict, len(docs))
	extra := make([]textRowExtra, len(docs))
	only := make([]textOnlyRow, len(docs))
	strID := make([]textRowStringID, len(docs))
	nullText := make([]textRowNullText, len(docs))
	nullDict := make([]textRowNullDict, len(docs))
	allNull := make([]textRowNullText, 40)
	for i := range allNull {
		allNull[i].ID = int64(i)
	}
	for i, d := range docs {
		optional[i] = textRowOptional{ID: &d.ID}
		if i%5 != 3 {
			optional[i].Text = &d.Text
		}
		nullID[i] = textRowNullID{ID: &d.ID, Text: d.Text}
		nullText[i].ID, nullDict[i].ID = d.ID, d.ID
		if i%7 != 2 && i%11 != 0 {
			nullText[i].Text = &d.Text
			nullDict[i].Text = &dict[i].Text
		}
		dict[i] = textRowDict{ID: d.ID, Text: fmt.Sprint("doc ", i%4)}
		delta[i] = textRowDelta(d)
		narrow[i] = textRowInt32{ID: int32(d.ID), Text: d.Text}
		narrowDict[i] = textRowInt32Dict{ID: int32(d.ID % 5), Text: d.Text}
		extra[i] = textRowExtra{Source: "s", Text: d.Text, ID: d.ID}
		only[i] = textOnlyRow{Text: d.Text}
		strID[i] = textRowStringID{ID: fmt.Sprint(d.ID), Text: d.Text}
	}
	tests := []struct {
		name    string
		data    []byte
		withIDs bool // ScanTextAt reads it
	}{
		{"download layout", writeRows(t, docs, 64), true},
		{"one row group", writeRows(t, docs, 1<<20), true},
		{"no rows", writeRows(t, []TextRow{}, 64), true},
		{"dictionary", writeRows(t, dict, 100), true},
		{"delta", writeRows(t, delta, 100), true},
		{"extra column", writeRows(t, extra, 100), true},
		{"nullable id and text", writeRows(t, optional, 100), true},
		{"nullable id", writeRows(t, nullID, 100), true},
		{"nullable text", writeRows(t, nullText, 100), true},
		{"nullable text, small pages", writePaged(t, nullText, 100, 512), true},
		{"nullable text, dictionary", writeRows(t, nullDict, 100), true},
		{"nullable text, every text null", writeRows(t, allNull, 16), true},
		{"int32 id", writeRows(t, narrow, 100), true},
		{"int32 id, dictionary", writeRows(t, narrowDict, 100), true},
		{"text only", writeRows(t, only, 64), false},
		{"string id", writeRows(t, strID, 64), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			notLaxerThanRowReader(t, "ScanTextsAt", scanTextsAll, textRowsAll, tc.data, true)
			if tc.withIDs {
				notLaxerThanRowReader(t, "ScanTextAt", scanTextAll, scanRowsAll, tc.data, true)
			}
		})
	}
}

// Unsigned ids read as their values, which the row reader does not do: it
// reads a uint32 over 2^31-1 as a negative number. A uint64 over 2^63-1 does
// not fit a document id (int64) and is refused.
func TestScanTextUnsignedIDs(t *testing.T) {
	small := writeRows(t, []textRowUint32{{4_000_000_000, "a"}, {7, "b"}, {1<<31 - 1, "c"}}, 2)
	rows, err := scanTextAll(small)
	want := []TextRow{{4_000_000_000, "a"}, {7, "b"}, {1<<31 - 1, "c"}}
	if err != nil || !reflect.DeepEqual(rows, want) {
		t.Errorf("uint32 ids: %v, %v; want %v", rows, err, want)
	}
	dict := writeRows(t, []textRowUint32Dict{{4_000_000_000, "a"}, {7, "b"}, {4_000_000_000, "c"}}, 10)
	want = []TextRow{{4_000_000_000, "a"}, {7, "b"}, {4_000_000_000, "c"}}
	if rows, err := scanTextAll(dict); err != nil || !reflect.DeepEqual(rows, want) {
		t.Errorf("uint32 ids, dictionary-encoded: %v, %v; want %v", rows, err, want)
	}
	fits := writeRows(t, []textRowUint64{{1<<63 - 1, "a"}, {0, "b"}}, 10)
	if rows, err := scanTextAll(fits); err != nil || rows[0].ID != 1<<63-1 {
		t.Errorf("uint64 ids under 2^63: %v, %v", rows, err)
	}
	type textRowUint64Dict struct {
		ID   uint64 `parquet:"id,dict"`
		Text string `parquet:"text"`
	}
	for _, over := range [][]byte{
		writeRows(t, []textRowUint64{{5, "a"}, {1 << 63, "b"}}, 10),
		writeRows(t, []textRowUint64Dict{{5, "a"}, {1 << 63, "b"}, {5, "c"}}, 10),
	} {
		_, err = scanTextAll(over)
		if err == nil || err.Error() != "s.parquet: row group 0: column id: document id 9223372036854775808 at row 1 is over 2^63-1 (ids are signed 64-bit)" {
			t.Errorf("a uint64 id over 2^63-1: err = %v", err)
		}
	}
}

func TestScanTextAtErrors(t *testing.T) {
	type onlyText struct {
		Text string `parquet:"text"`
	}
	good := writeRows(t, textDocs(50, 5000), 20)
	stop := errors.New("stop")
	tests := []struct {
		name string
		data []byte
		fn   func(TextBatch) error
		want string
	}{
		{"missing column", writeRows(t, []onlyText{{"a"}}, 10), nil, `s.parquet: missing column "id"`},
		{"string id", writeRows(t, []textRowStringID{{"1", "a"}}, 10), nil,
			`s.parquet: column "id" is BYTE_ARRAY STRING, not an integer column (INT64 or INT32, unnested)`},
		{"float id", writeRows(t, []struct {
			ID   float64 `parquet:"id"`
			Text string  `parquet:"text"`
		}{{1, "a"}}, 10), nil, `s.parquet: column "id" is DOUBLE, not an integer column (INT64 or INT32, unnested)`},
		{"repeated id", writeRows(t, []struct {
			ID   []int64 `parquet:"id"`
			Text string  `parquet:"text"`
		}{{[]int64{1}, "a"}}, 10), nil, `s.parquet: column "id" is repeated INT64`},
		{"timestamp id", writeRows(t, []struct {
			ID   int64  `parquet:"id,timestamp"`
			Text string `parquet:"text"`
		}{{1, "a"}}, 10), nil, `s.parquet: column "id" is INT64 TIMESTAMP`},
		{"null id", writeRows(t, []textRowNullID{{new(int64(3)), "a"}, {nil, "b"}}, 10), nil,
			"s.parquet: row group 0: column id: a null document id near row 0"},
		{"null id in a later row group", writeRows(t, []textRowNullID{{new(int64(1)), "a"}, {new(int64(2)), "b"}, {new(int64(3)), "c"}, {nil, "d"}}, 2), nil,
			"s.parquet: row group 1: column id: a null document id near row 0"},
		{"text of numbers", writeRows(t, []struct {
			ID   int64 `parquet:"id"`
			Text int64 `parquet:"text"`
		}{{1, 12}}, 10), nil, `s.parquet: column "text" is INT64 INT(64,true), not a string column (BYTE_ARRAY, unnested; STRING, ENUM, JSON or no annotation)`},
		{"no text", writeRows(t, []struct {
			ID int64 `parquet:"id"`
		}{{1}}, 10), nil, `s.parquet: missing column "text" (has [id])`},
		{"not Parquet", []byte("PAR1 not really PAR1"), nil, "s.parquet: not a readable Parquet file"},
		{"truncated", good[:len(good)-20], nil, "s.parquet:"},
		{"caller's error", good, func(TextBatch) error { return stop }, "stop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fn := tc.fn
			if fn == nil {
				fn = func(TextBatch) error { return nil }
			}
			err := ScanTextAt(bytes.NewReader(tc.data), int64(len(tc.data)), "s.parquet", fn)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q...", err, tc.want)
			}
			if tc.fn != nil && err != stop {
				t.Errorf("the caller's error came back as %v, not itself", err)
			}
		})
	}
}

// fuzzInput reads the []byte argument of a committed fuzz input of target.
func fuzzInput(t *testing.T, target, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", target, name))
	if err != nil {
		t.Fatal(err)
	}
	_, arg, ok := strings.Cut(strings.TrimSpace(string(raw)), "\n[]byte(")
	if !ok || !strings.HasSuffix(arg, ")") {
		t.Fatalf("%s: not a one-[]byte fuzz input", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// A row group whose columns hold more values than its stated 2 rows:
// parquet-go's row reader makes 16 rows of it. The row path refuses the group,
// as the page path refuses such a column.
func TestScanRowsRowCount(t *testing.T) {
	// Data pages v1, which state no rows (the guard checks those of v2).
	data := withFooter(t, writeCompressed(t, textDocs(16, 2), &parquet.Uncompressed, 1), func(md *format.FileMetaData) { md.RowGroups[0].NumRows = 2 })
	_, err := scanRowsAll(data)
	if err == nil || !strings.Contains(err.Error(), "s.parquet: row group 0: more rows than the 2 its metadata states") {
		t.Fatalf("err = %v, want the row group refused", err)
	}
	// Here the id column's pages hold 16 values where its chunk states 2;
	// the guard refuses that on every path. The text column is intact.
	data = fuzzInput(t, "FuzzScanText", "7fe8d430538b9898")
	if _, err := scanRowsAll(data); err == nil || !strings.Contains(err.Error(), "s.parquet: row group 0: the data pages of the column chunk at byte 4 claim 16 values, its footer 2") {
		t.Errorf("the id column of 16 values: err = %v, want the chunk refused", err)
	}
	if texts, err := scanTextsAll(data); err != nil || len(texts) != 2 {
		t.Errorf("ScanTextsAt (the text column alone, which is intact): %d texts, %v", len(texts), err)
	}
}

// Column chunks whose metadata the pages cannot honour are refused, though
// the pages a reader would take read: a data page offset outside the file or
// its chunk, before the dictionary page or not where the pages after it start
// (parquet-go reads the pages from the dictionary page; its row reader seeks
// the offset and fails there, or reads zero values), data pages claiming
// other than the values their chunk states or (version 2) the rows of their
// row group, a codec Parquet does not define,
// and a column of a physical type Parquet does not define (parquet-go takes the type of its STRING annotation;
// the input was found as a chunk of values in a row group of 0 rows:
// TestOneValueARow).
func TestTextChunkClaimsRefused(t *testing.T) {
	for _, c := range []struct{ input, want string }{ // FuzzScanText's inputs, or TARGET/input
		{"1641e20e85511b51", "s.parquet: not a readable Parquet file (truncated or corrupt?): row group 1, column 1: data page offset -320 outside the file"},
		{"e6c3ee27730cc766", "s.parquet: not a readable Parquet file (truncated or corrupt?): row group 1, column 1: dictionary page offset 258 not between the file's start and the data page offset 28"},
		{"361a514ba790a4ae", "s.parquet: row group 1: column text: the page at byte 284 runs to byte 332, past its column chunk's data page offset 318"},
		{"affd290f4b2609fb", "s.parquet: not a readable Parquet file (truncated or corrupt?): the footer's encoding is damaged: a value of type 0"},
		{"66dad09eb7b3ab95", "s.parquet: not a readable Parquet file (truncated or corrupt?): the footer's encoding is damaged: a value of type 0"},
		{"FuzzReadDocsParquet/c8002b1e42c3d694", "s.parquet: not a readable Parquet file (truncated or corrupt?): row group 0, column 1: data page offset 829 past its column chunk's end at byte 176"},
		{"b8994c91db065790", "s.parquet: not a readable Parquet file (truncated or corrupt?): the footer's encoding is damaged: a value of type 0"},
		{"FuzzReadDocsParquet/dbab593682afd3b9", "s.parquet: not a readable Parquet file (truncated or corrupt?): the footer's encoding is damaged: a value of type 0"},
		{"FuzzReadDocsParquet/a60fe841830b2974", "s.parquet: not a readable Parquet file (truncated or corrupt?): the footer's encoding is damaged: a value of type 0"},
	} {
		target, input, ok := strings.Cut(c.input, "/")
		if !ok {
			target, input = "FuzzScanText", c.input
		}
		_, err := scanTextsAll(fuzzInput(t, target, input))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.input, err, c.want)
		}
	}
	// A required id column's page claiming nulls: ScanTextAt, which reads
	// the ids, refuses it; ScanTextsAt reads the intact texts.
	data := fuzzInput(t, "FuzzScanText", "6cb5b0666b31151a")
	want := "s.parquet: row group 0: column id: the page at byte 4 claims 4 nulls in a required column"
	if _, err := scanTextAll(data); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("6cb5b0666b31151a: ScanTextAt: err = %v, want %q", err, want)
	}
	if texts, err := scanTextsAll(data); err != nil || len(texts) != 8 {
		t.Errorf("6cb5b0666b31151a: ScanTextsAt: %d texts, %v", len(texts), err)
	}
}

// A chunk must state one value for each row of its group, even where no page
// need be read (a group of 0 rows over 24 values).
func TestOneValueARow(t *testing.T) {
	if err := oneValueARow(statedValues{n: 24}, 0); err == nil || err.Error() != "24 values in a row group of 0 rows" {
		t.Errorf("24 values, 0 rows: err = %v", err)
	}
	if err := oneValueARow(statedValues{n: 7}, 7); err != nil {
		t.Errorf("7 values, 7 rows: %v", err)
	}
}

// statedValues is a column chunk that states n values (and does nothing else).
type statedValues struct {
	parquet.ColumnChunk
	n int64
}

func (c statedValues) NumValues() int64 { return c.n }

// A column whose logical type does not fit the physical type the file states
// for it is refused: parquet-go decodes its pages by the logical type, so an
// INT64 column annotated INT(32) read as int32 gives the halves of its values
// as ids, without an error (and the row reader reads those halves too).
func TestScanTextTypeMismatch(t *testing.T) {
	docs := textDocs(8, 2)
	for i := range docs {
		docs[i].ID = int64(i+1)<<33 | int64(i)
	}
	data := writeRows(t, docs, 100)
	retype := func(column string, edit func(*format.SchemaElement)) []byte {
		return withFooter(t, data, func(md *format.FileMetaData) {
			for i := range md.Schema {
				if md.Schema[i].Name == column {
					edit(&md.Schema[i])
				}
			}
		})
	}
	narrowID := retype("id", func(e *format.SchemaElement) {
		e.LogicalType = format.LogicalType{Value: &format.IntType{BitWidth: 32, IsSigned: true}}
	})
	if rows, err := scanTextAll(narrowID); err == nil || err.Error() != `s.parquet: column "id" is INT32 INT(32,true) stored as INT64: its logical type does not fit its physical type` {
		t.Errorf("an INT64 id annotated INT(32): %d rows (%v), err = %v", len(rows), rows, err)
	}
	intText := retype("text", func(e *format.SchemaElement) { e.Type.V = format.Int32 })
	want := `s.parquet: column "text" is BYTE_ARRAY STRING stored as INT32: its logical type does not fit its physical type`
	if _, err := scanTextAll(intText); err == nil || err.Error() != want {
		t.Errorf("ScanTextAt: an INT32 text annotated STRING: err = %v", err)
	}
	if _, err := scanTextsAll(intText); err == nil || err.Error() != want {
		t.Errorf("ScanTextsAt: an INT32 text annotated STRING: err = %v", err)
	}
	undefined := retype("text", func(e *format.SchemaElement) { e.Type.V = 9 })
	want = `s.parquet: column "text" is BYTE_ARRAY STRING stored as physical type 9, which Parquet does not define: its logical type does not fit its physical type`
	if _, err := scanTextsAll(undefined); err == nil || err.Error() != want {
		t.Errorf("ScanTextsAt: a text of physical type 9: err = %v", err)
	}
}

type textRowStringID struct {
	ID   string `parquet:"id"`
	Text string `parquet:"text"`
}

// ScanTexts reads a local file's texts, and names a file it cannot open.
func TestScanTexts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.parquet")
	docs := textDocs(50, 3)
	if err := WriteParquet(path, docs, 16); err != nil {
		t.Fatal(err)
	}
	var texts []string
	if err := ScanTexts(path, func(b []string) error { texts = append(texts, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(texts, textsOf(docs)) {
		t.Errorf("%d texts read, want the %d written", len(texts), len(docs))
	}
	missing := filepath.Join(t.TempDir(), "none.parquet")
	if err := ScanTexts(missing, func([]string) error { return nil }); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing file: err = %v", err)
	}
}

// A file without a text column is refused by name.
func TestScanTextsAtNoText(t *testing.T) {
	type onlyID struct {
		ID int64 `parquet:"id"`
	}
	data := writeRows(t, []onlyID{{1}}, 10)
	if _, err := scanTextsAll(data); err == nil || !strings.HasPrefix(err.Error(), `s.parquet: missing column "text"`) {
		t.Errorf("a file without a text column: err = %v", err)
	}
	// A column text of numbers is no documents (the row reader would convert
	// them to their digits).
	type numbers struct {
		Text int64 `parquet:"text"`
	}
	data = writeRows(t, []numbers{{12}}, 10)
	if _, err := scanTextsAll(data); err == nil || err.Error() != `s.parquet: column "text" is INT64 INT(64,true), not a string column (BYTE_ARRAY, unnested; STRING, ENUM, JSON or no annotation)` {
		t.Errorf("a column text of numbers: err = %v", err)
	}
}

// FuzzScanText: on any bytes, never a panic, and never more lenient than the
// row reader: what ScanTextAt reads, the row reader reads the same (an
// unsigned 32-bit id as its value: scanRowsAll); the same for ScanTextsAt.
// What ScanTextAt reads, ScanTextsAt reads too (the same text reader, and
// ScanTextAt also reads the ids), with the same texts. On damaged files
// ScanTextAt may be stricter: it refuses a null id (the row reader reads 0), a
// row group whose columns do not hold a value per row, or hold more values
// than it has rows (where the row reader makes the extra rows of zeros:
// regression input c7592bb46d9247e8), and a dictionary page of unknown type,
// where the row reader (reading the dictionary by its offset) still reads the
// rows (regression input 2612fc68292d610e). The intact seeds must read.
// (Other regression inputs are files whose damaged page index once made the
// row reader return other rows than the pages hold; no reader here reads the
// page index now.)
func FuzzScanText(f *testing.F) {
	seeds := [][]byte{
		writePaged(f, textDocs(30, 40), 8, 512), // several pages a row group
		writeRows(f, []textRowDict{{1, "a"}, {2, "b"}, {3, "a"}}, 2),
		writeRows(f, []textRowDelta{{1, "ab"}, {5, ""}}, 2),
		writeRows(f, []textRowOptional{{ID: new(int64(1))}, {ID: new(int64(2)), Text: new(string)}}, 2),
		writeRows(f, []textRowUint32Dict{{4_000_000_000, "a"}, {7, "b"}, {4_000_000_000, ""}}, 2),
		writePaged(f, []textRowNullText{{ID: 1}, {2, new("ab")}, {3, new("")}, {ID: 4}, {5, new("cde")}}, 3, 256),
		writeRows(f, []textRowNullDict{{1, new("a")}, {ID: 2}, {3, new("a")}}, 2),
		writeRows(f, largeDictRows(150), 150), // a dictionary page over parquet-go's read window
	}
	for i, c := range codecs[2:] { // GZIP, Brotli, ZSTD, LZ4_RAW: checkBody decodes their pages
		seeds = append(seeds, writeCompressed(f, textDocs(8, 4), c.codec, 1+i%2))
	}
	textOnly := writePaged(f, []textOnlyRow{{"a"}, {""}, {"bc"}, {strings.Repeat("d", 300)}, {"e"}}, 2, 256)
	intact := map[string]bool{} // intact files; true: with an id column
	for _, s := range append(seeds, textOnly) {
		intact[string(s)] = !bytes.Equal(s, textOnly)
		f.Add(s)
		f.Add(s[:len(s)*2/3])
	}
	f.Add(writeRows(f, []textRowOptional{{}, {Text: new(string)}}, 2)) // null ids: ScanTextAt refuses them
	f.Fuzz(func(t *testing.T, data []byte) {
		withID, isIntact := intact[string(data)]
		texts, textsRead := notLaxerThanRowReader(t, "ScanTextsAt", scanTextsAll, textReference, data, isIntact)
		rows, rowsRead := notLaxerThanRowReader(t, "ScanTextAt", scanTextAll, scanRowsAll, data, withID)
		if rowsRead && (!textsRead || !slices.Equal(texts, textsOf(rows))) {
			t.Fatalf("ScanTextAt read %d rows; ScanTextsAt read %d texts (%v), not the same", len(rows), len(texts), textsRead)
		}
	})
}

// errRowReaderUnsure: the row reader is no reference for the file.
var errRowReaderUnsure = errors.New("the row reader is no reference for this file")

// textReference is the row reader's texts of data, the reference for
// ScanTextsAt, which reads the text column alone. The row reader reads every
// column, and parquet-go's reader of the text column alone converts each row
// group to that column: on a file damaged in another column it fails
// (regression input 0dbd55c5b131253c, a column renamed by the damage) or
// misreads the texts (3110a74384f74276: "", "", "a" where the pages hold "a",
// "b", "a"). So the text-only reader is the reference only for a file of the
// text column alone; for one with an id column, the reader of whole rows is,
// where it reads; anything else has none (errRowReaderUnsure).
//
// Where arrow-go's reader reads the text column too and reads other texts,
// arrow-go's are the reference: the row reader has misread a file whose id
// column was damaged (regression input 62df1544e39e1012, a required id page
// of 8 values with 4 nulls: it repeated the fourth text for the last four
// rows, where the pages, and arrow-go, hold other texts).
func textReference(data []byte) ([]string, error) {
	texts, err := rowReaderTexts(data)
	if err != nil {
		return texts, err
	}
	if other, aerr := arrowTexts(data); aerr == nil && !slices.Equal(other, texts) {
		return other, nil
	}
	return texts, nil
}

// rowReaderTexts is parquet-go's row reader's texts of data, as
// textReference takes them.
func rowReaderTexts(data []byte) ([]string, error) {
	pf, err := openParquetAt(bytes.NewReader(data), int64(len(data)), "s.parquet")
	if err != nil || len(pf.Schema().Columns()) == 1 {
		return textRowsAll(data)
	}
	if _, ok := pf.Schema().Lookup("id"); ok {
		if rows, err := scanRowsAll(data); err == nil {
			return textsOf(rows), nil
		}
	}
	return nil, errRowReaderUnsure
}

// arrowTexts reads the column text of data with arrow-go's reader (pqarrow),
// a null as "".
func arrowTexts(data []byte) (texts []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("arrow-go: %v", r)
		}
	}()
	tbl, err := readArrowTable(data)
	if err != nil {
		return nil, err
	}
	defer tbl.Release()
	for i := range int(tbl.NumCols()) {
		if tbl.Column(i).Name() != "text" {
			continue
		}
		for _, chunk := range tbl.Column(i).Data().Chunks() {
			a, ok := chunk.(*array.String)
			if !ok {
				return nil, fmt.Errorf("arrow-go: text is %s", chunk.DataType())
			}
			for j := range a.Len() {
				texts = append(texts, strings.Clone(a.Value(j))) // "" where null
			}
		}
		return texts, nil
	}
	return nil, errors.New("arrow-go: no column text")
}

// notLaxerThanRowReader is FuzzScanText's invariant for one reader: an error
// names the file and is no intact file's (mustRead); what read reads, the row
// reader (reference) reads too, and the same unless it says
// errRowReaderUnsure. It returns what read read, and whether it did.
func notLaxerThanRowReader[E any](t *testing.T, what string, read, reference func([]byte) ([]E, error), data []byte, mustRead bool) ([]E, bool) {
	t.Helper()
	got, err := read(data)
	if err != nil {
		if mustRead {
			t.Fatalf("%s refused an intact file: %v", what, err)
		}
		if !strings.HasPrefix(err.Error(), "s.parquet") {
			t.Fatalf("%s: error %v does not name the file", what, err)
		}
		return nil, false
	}
	want, err := reference(data)
	if errors.Is(err, errRowReaderUnsure) {
		return got, true
	}
	if err != nil {
		t.Fatalf("%s read %d items; the row reader refused: %v", what, len(got), err)
	}
	if !slices.EqualFunc(got, want, func(a, b E) bool { return reflect.DeepEqual(a, b) }) {
		t.Fatalf("%s read %d items, the row reader %d, and they differ", what, len(got), len(want))
	}
	return got, true
}

// A footer length the file cannot hold is refused before parquet-go
// allocates a buffer of that length (up to 4 GiB), at every entry point that
// opens Parquet with parquet-go.
func TestParquetFooterClaimRefused(t *testing.T) {
	good := writeRows(t, textDocs(5, 10), 8)
	bad := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(bad[len(bad)-8:], 0xFFFFFFF0)
	refusedCheaply(t, bad, []string{"ScanTextAt", "ScanParquet", "ReadDocs", "CountDocs"}, func(err error) bool {
		return strings.Contains(err.Error(), "footer claimed")
	})
}

// placeNulls puts a nullable page's values at the rows its levels mark
// present, "" at the nulls, and refuses levels and values that disagree.
func TestPlaceNulls(t *testing.T) {
	tests := []struct {
		name    string
		present []string
		levels  []byte
		want    []string
		err     string
	}{
		{"no nulls", []string{"a", "b"}, []byte{1, 1}, []string{"a", "b"}, ""},
		{"nulls", []string{"a", "b"}, []byte{0, 1, 0, 0, 1}, []string{"", "a", "", "", "b"}, ""},
		{"only nulls", nil, []byte{0, 0}, []string{"", ""}, ""},
		{"empty page", nil, nil, nil, ""},
		{"a value short", []string{"a"}, []byte{1, 1}, nil, "a page marks 2 of its 2 rows present and holds 1 values"},
		{"a value over", []string{"a", "b"}, []byte{1, 0}, nil, "a page marks 1 of its 2 rows present and holds 2 values"},
		{"level over the column's", []string{"a"}, []byte{0, 2}, nil, "definition level 2 at row 1 of a page, over the column's 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := placeNulls(tc.present, tc.levels)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("placeNulls = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
