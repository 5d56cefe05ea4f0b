package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// withPageHeader returns data with the first page header of column col's
// first chunk changed by edit (re-encoded in place; later offsets may shift,
// which no reader gets to). With keepEnd, a header that grew shrinks its page
// by as much, so the page still fits its chunk.
func withPageHeader(t *testing.T, data []byte, col int, keepEnd bool, edit func(*format.PageHeader)) []byte {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	md := pf.Metadata().RowGroups[0].Columns[col].MetaData
	start := md.DataPageOffset
	if md.DictionaryPageOffset != 0 {
		start = md.DictionaryPageOffset
	}
	var h format.PageHeader
	n, err := decodeHeader(bytes.NewReader(data), start, int64(len(data)), &h)
	if err != nil {
		t.Fatal(err)
	}
	edit(&h)
	b, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		t.Fatal(err)
	}
	if grown := int32(len(b)) - int32(n); keepEnd && grown > 0 {
		// The header grew into its page: the page shrinks so it still ends
		// where it did (its last bytes are lost).
		h.CompressedPageSize -= grown
		if b, err = thrift.Marshal(new(thrift.CompactProtocol), &h); err != nil || int64(len(b)) != n+int64(grown) {
			t.Fatalf("re-encoded header: %d bytes, %v", len(b), err)
		}
	}
	out := append([]byte(nil), data[:start]...)
	out = append(out, b...)
	return append(out, data[start+n:]...)
}

// A page header claiming more bytes than its column chunk holds, or more than
// maxPageBytes uncompressed, is refused before parquet-go allocates the claim,
// through every reader that opens Parquet with parquet-go.
func TestPageGuard(t *testing.T) {
	good := writeRows(t, textDocs(20, 10), 100)
	tests := []struct {
		name string
		edit func(*format.PageHeader)
	}{
		{"compressed size", func(h *format.PageHeader) { h.CompressedPageSize = 1<<31 - 1 }},
		{"uncompressed size", func(h *format.PageHeader) { h.UncompressedPageSize = 1<<31 - 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := withPageHeader(t, good, 1, false, tc.edit) // the text column
			refusedCheaply(t, bad, []string{"ScanTextAt", "ScanParquet", "ReadDocs"}, func(err error) bool {
				return errors.Is(err, errPageClaim)
			})
		})
	}
	// The intact file reads through the guard.
	if rows, err := scanTextAll(good); err != nil || len(rows) != 20 {
		t.Errorf("intact file: %d rows, %v", len(rows), err)
	}
}

// A column chunk whose claimed length runs past the file is guarded up to
// the file's end, not skipped.
func TestPageGuardChunkPastFile(t *testing.T) {
	good := writeRows(t, textDocs(20, 10), 100)
	pf, err := parquet.OpenFile(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	md := *pf.Metadata()
	md.RowGroups = append([]format.RowGroup(nil), md.RowGroups...)
	md.RowGroups[0].Columns = append([]format.ColumnChunk(nil), md.RowGroups[0].Columns...)
	md.RowGroups[0].Columns[1].MetaData.TotalCompressedSize = 1 << 40
	g := &pageGuard{r: bytes.NewReader(good)}
	if err := g.guard(&md, int64(len(good)), nil); err != nil {
		t.Fatal(err)
	}
	text := md.RowGroups[0].Columns[1].MetaData
	start := text.DataPageOffset
	if text.DictionaryPageOffset != 0 {
		start = text.DictionaryPageOffset
	}
	var c *guardedChunk
	for i := range g.chunks {
		if g.chunks[i].start == start {
			c = &g.chunks[i]
		}
	}
	if c == nil || c.end != int64(len(good)) {
		t.Fatalf("chunk at %d: %+v, want it guarded to the file's end %d", start, c, len(good))
	}
}

// refusedCheaply writes bad to a file and reads it with each named reader
// (ScanTextAt, ScanParquet, ReadDocs, CountDocs): each must refuse it with an
// error that refused accepts and names the file, having allocated at most 4
// MB (the claims under test are GBs).
func refusedCheaply(t *testing.T, bad []byte, names []string, refused func(error) bool) {
	t.Helper()
	refusedWithin(t, bad, names, refused, 4<<20)
}

// refusedWithin is refusedCheaply allowing limit bytes of allocation.
func refusedWithin(t *testing.T, bad []byte, names []string, refused func(error) bool, limit uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.parquet")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	readers := map[string]func() error{
		"ScanTextAt": func() error {
			return ScanTextAt(bytes.NewReader(bad), int64(len(bad)), path, func(TextBatch) error { return nil })
		},
		"ScanParquet": func() error {
			return ScanParquet(path, []string{"text"}, func([]TextRow) error { return nil })
		},
		"ReadDocs":  func() error { return ReadDocs(path, "text", ByLine, func(string) error { return nil }) },
		"CountDocs": func() error { _, err := CountDocs(path, "text", ByLine); return err },
	}
	for _, name := range names {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := readers[name]()
		runtime.ReadMemStats(&after)
		if err == nil || !refused(err) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > limit {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", name, n, len(bad))
		}
	}
}

// A page claiming more values than maxPageValues is refused before
// parquet-go sizes buffers by that count (its decodeDataPage takes an offset a
// value for byte arrays).
func TestPageGuardValues(t *testing.T) {
	var b bytes.Buffer
	w := parquet.NewGenericWriter[TextRow](&b, parquet.Compression(&parquet.Uncompressed))
	if _, err := w.Write(textDocs(6, 3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bad := withPageHeader(t, b.Bytes(), 1, true, func(h *format.PageHeader) {
		if !h.DataPageHeaderV2.Valid {
			t.Fatalf("first text page is %v, not a data page v2", h.Type)
		}
		h.DataPageHeaderV2.V.NumValues = 1<<31 - 1
		h.CRC = 0 // no checksum to stop parquet-go before it decodes
	})
	refusedCheaply(t, bad, []string{"ScanTextAt", "ScanParquet", "ReadDocs"}, func(err error) bool {
		return errors.Is(err, errPageClaim) && strings.Contains(err.Error(), "values")
	})
}

// FuzzReadDocsParquet: a Parquet source file of any bytes (the download
// stage reads users' files with ReadDocs, through scanColumnTexts) gives
// documents or an error naming the file, never a panic; an intact file gives
// its texts, in order; what it reads, the row reader reads the same
// (notLaxerThanRowReader, textReference, as for ScanTextsAt). The bytes go
// through a file, as ReadDocs takes them, for the seeds only: scanColumnTexts
// reads the rest from memory, many times faster.
func FuzzReadDocsParquet(f *testing.F) {
	seeds := [][]byte{
		writePaged(f, textDocs(12, 40), 5, 512),
		writeRows(f, []textRowDict{{1, "a"}, {2, "b"}, {3, "a"}}, 2),
		writeRows(f, []textRowOptional{{}, {Text: new(string)}}, 2),
		writePaged(f, []textRowNullText{{ID: 1}, {2, new("ab")}, {3, new("")}, {ID: 4}, {5, new("cde")}}, 3, 256),
		writeRows(f, []textRowNullDict{{1, new("a")}, {ID: 2}, {3, new("a")}}, 2),
	}
	intact := map[string]bool{}
	for _, s := range seeds {
		intact[string(s)] = true
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(data []byte) ([]string, error) {
			var docs []string
			err := scanColumnTexts(bytes.NewReader(data), int64(len(data)), "s.parquet", "text", func(b []string) error {
				docs = append(docs, b...)
				return nil
			})
			return docs, err
		}
		got, _ := notLaxerThanRowReader(t, "ReadDocs", read, textReference, data, intact[string(data)])
		if !intact[string(data)] {
			return
		}
		path := filepath.Join(t.TempDir(), "src.parquet")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var docs []string
		if err := ReadDocs(path, "text", ByLine, func(s string) error { docs = append(docs, s); return nil }); err != nil || !slices.Equal(docs, got) {
			t.Fatalf("ReadDocs read %d documents (%v), from memory %d", len(docs), err, len(got))
		}
	})
}

// A read that lands past the page header the guard checked last
// (parquet-go's row reader seeks a chunk's stated data page offset once it has
// read the dictionary) is checked too: the guard walks the headers up to it.
// Here a dictionary page larger than parquet-go's 4 KB read window ends 16
// bytes before the stated data page, whose header claims 2 GB. Without the
// walk, the row reader allocated 2.9 GB for this 7 KB file.
func TestPageGuardReadAhead(t *testing.T) {
	good := writeRows(t, largeDictRows(150), 150)
	pf, err := parquet.OpenFile(bytes.NewReader(good), int64(len(good)), parquet.SkipPageIndex(true))
	if err != nil {
		t.Fatal(err)
	}
	md := pf.Metadata().RowGroups[0].Columns[1].MetaData
	dict, data := md.DictionaryPageOffset, md.DataPageOffset
	if dict == 0 || data-dict <= 4096 {
		t.Fatalf("text chunk: dictionary at %d, data at %d: want a dictionary page over 4 KB", dict, data)
	}
	// The data page's header claims 2 GB (the page is the chunk's last).
	var h format.PageHeader
	n, err := decodeHeader(bytes.NewReader(good), data, int64(len(good)), &h)
	if err != nil {
		t.Fatal(err)
	}
	h.CompressedPageSize = 1<<31 - 1
	hb, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil {
		t.Fatal(err)
	}
	const gap = 16
	bad := slices.Concat(good[:data], make([]byte, gap), hb, good[data+n:])
	bad = withFooter(t, bad, func(fm *format.FileMetaData) {
		c := &fm.RowGroups[0].Columns[1].MetaData
		c.DataPageOffset += gap
		c.TotalCompressedSize += gap + int64(len(hb)) - n
	})
	// The walk from the dictionary's end finds no page header in the gap.
	want := fmt.Sprintf("page header at byte %d: ", data)
	refusedCheaply(t, bad, []string{"ScanTextAt", "ScanParquet", "ReadDocs"}, func(err error) bool {
		return strings.Contains(err.Error(), want)
	})
}

// largeDictRows gives n rows of distinct 40-byte texts in a dictionary column:
// at 150 rows, its dictionary page outgrows parquet-go's 4 KB read window.
func largeDictRows(n int) []textRowDict {
	rows := make([]textRowDict, n)
	for i := range rows {
		x := uint64(i+1) * 0x9e3779b97f4a7c15
		rows[i] = textRowDict{ID: int64(i), Text: fmt.Sprintf("%016x%016x%08x", x, x*x, x>>32)}
	}
	return rows
}

// guardAll walks data's footer and opens data as the readers do, changes its
// footer's metadata by edit (nil: none) and has the page guard check every
// byte of it.
func guardAll(t *testing.T, data []byte, edit func(*format.FileMetaData)) error {
	t.Helper()
	if err := checkFooter(footerOf(data)); err != nil {
		return err
	}
	pf, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		t.Fatal(err)
	}
	md := *pf.Metadata()
	md.RowGroups = append([]format.RowGroup(nil), md.RowGroups...)
	for i := range md.RowGroups {
		md.RowGroups[i].Columns = append([]format.ColumnChunk(nil), md.RowGroups[i].Columns...)
	}
	if edit != nil {
		edit(&md)
	}
	g := &pageGuard{r: bytes.NewReader(data)}
	if err := g.guard(&md, int64(len(data)), leafShapes(pf)); err != nil {
		return err
	}
	return g.check(0, int64(len(data)))
}

// The guard holds a column chunk's pages to what its footer and row group
// state, and a page of fixed-width values stored plain to the values its
// levels define.
func TestPageGuardChunkClaims(t *testing.T) {
	good := writeRows(t, textDocs(6, 2), 10) // data pages v2, Snappy
	dict := writeRows(t, []textRowDict{{1, "a"}, {2, "b"}, {3, "a"}}, 10)
	if err := guardAll(t, good, nil); err != nil {
		t.Fatalf("intact file: %v", err)
	}
	text := func(md *format.FileMetaData) *format.ColumnMetaData { return &md.RowGroups[0].Columns[1].MetaData }
	tests := []struct {
		name string
		data []byte
		edit func(*format.FileMetaData)
		want string
	}{
		{"values", good, func(md *format.FileMetaData) { text(md).NumValues++ }, "claim 6 values, its footer 7"},
		{"rows", good, func(md *format.FileMetaData) { md.RowGroups[0].NumRows = 5 }, "claim 6 rows, its row group 5"},
		{"data page past its chunk", dict, func(md *format.FileMetaData) {
			text(md).DataPageOffset = text(md).DictionaryPageOffset + text(md).TotalCompressedSize
		}, "past its column chunk's end"},
		{"codec", good, func(md *format.FileMetaData) { text(md).Codec = 24 }, "compression codec 24, which Parquet does not define"},
		{"physical type", good, func(md *format.FileMetaData) { text(md).Type = 9 }, "physical type 9, which Parquet does not define"},
	}
	for _, tc := range tests {
		if err := guardAll(t, tc.data, tc.edit); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	pages := []struct {
		name string
		edit func(*format.PageHeader)
		want string
	}{
		{"nulls in a required column", func(h *format.PageHeader) { h.DataPageHeaderV2.V.NumNulls = 1 }, "claims 1 nulls in a required column"},
		{"nulls over values", func(h *format.PageHeader) { h.DataPageHeaderV2.V.NumNulls = 7 }, "claims 7 nulls of 6 values"},
		{"values cut short", func(h *format.PageHeader) { h.DataPageHeaderV2.V.NumValues = 7 }, "its levels define 7 values of 8 bytes, its data holds 48 bytes"},
	}
	for _, tc := range pages {
		bad := withPageHeader(t, good, 0, true, tc.edit) // the id column, INT64 plain
		if err := guardAll(t, bad, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// A dictionary of three INT64 ids stating four.
	ids := writeRows(t, []idDictRow{{1, "a"}, {2, "b"}, {3, "c"}, {1, "d"}}, 10)
	bad := withPageHeader(t, ids, 0, true, func(h *format.PageHeader) { h.DictionaryPageHeader.V.NumValues = 4 })
	if err := guardAll(t, bad, nil); err == nil || !strings.Contains(err.Error(), "its header states 4 values of 8 bytes, its data holds 24 bytes") {
		t.Errorf("a dictionary cut short: err = %v", err)
	}
}

// idDictRow is a document whose id column is dictionary-encoded.
type idDictRow struct {
	ID   int64  `parquet:"id,dict"`
	Text string `parquet:"text"`
}

// A token list page v1 whose levels define 6 ids where its data holds 5 is
// refused: parquet-go read the sixth from its pooled buffer, 0 or 5 from run
// to run (FuzzScanTokens input cd505a43e2010ee7).
func TestPageGuardTokensCutShort(t *testing.T) {
	data := fuzzInput(t, "FuzzScanTokens", "cd505a43e2010ee7")
	err := ScanTokensTablesAt(bytes.NewReader(data), int64(len(data)), "t.parquet", func(TokensTable) error { return nil })
	want := "the page at byte 97: its levels define 6 values of 4 bytes, its data holds 20 bytes"
	if err == nil || !errors.Is(err, errPageData) || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// The files of parquet-go's test data, written by parquet-mr, Impala, Spark,
// Arrow C++, Rust's parquet and others (many from apache/parquet-testing):
// every one that parquet-go opens passes the footer walk and the guard's
// checks of every page (plain and dictionary, data pages v1 and v2, the
// delta encodings, nested lists and maps, Snappy, GZIP, ZSTD, LZ4_RAW), and
// its footer walk charges at most half the budget for each.
func TestPageGuardOtherWriters(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/parquet-go/parquet-go").Output()
	if err != nil {
		t.Skipf("parquet-go's module directory: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "testdata", "*.parquet"))
	if len(files) < 20 {
		t.Skipf("%d files in parquet-go's test data", len(files))
	}
	maxCharge := 0.0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true)); err != nil {
			continue // parquet-go does not open it either
		}
		if err := guardAll(t, data, nil); err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
		}
		// The footer budget leaves real footers room: twice their charge.
		charge, err := footerCharge(footerOf(data))
		if err != nil || charge > footerBudgetFactor/2 {
			t.Errorf("%s: the footer walk charges %.1f a byte (%v), over half the budget's %d", filepath.Base(path), charge, err, footerBudgetFactor)
		}
		maxCharge = max(maxCharge, charge)
	}
	t.Logf("the footers charge at most %.1f a byte", maxCharge)
}
