package datasets

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// BenchmarkPackedWriter: 1100 blocks of 1024 GPT-2-range ids (about 1.1M tokens)
// through PackedWriter into Arrow IPC + Parquet, fsync and hashing included.
func BenchmarkPackedWriter(b *testing.B) {
	rows := make([]PackedRow, 1100)
	for i := range rows {
		ids := make([]int32, 1024)
		for j := range ids {
			ids[j] = int32((i*1024 + j) % 50257)
		}
		rows[i] = PackedRow{InputIDs: ids, AttentionMask: ones(1024)}
	}
	b.SetBytes(1100 * 1024 * 4)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		w, err := NewPackedWriter(dir, "train", 1024)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			w.Write(r)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTokensTable is a table shaped like one chunk of the tokenize stage: 1 MB
// of English text in 700 documents, about 256K GPT-2 ids.
func benchTokensTable() TokensTable {
	const docs, perDoc = 700, 366
	t := TokensTable{Offsets: []int64{0}}
	for d := range docs {
		t.IDs = append(t.IDs, int64(d))
		for j := range perDoc + d%7 - 3 {
			t.Flat = append(t.Flat, int32((d*perDoc+j*7919)%50257))
		}
		t.Offsets = append(t.Offsets, int64(len(t.Flat)))
	}
	return t
}

// BenchmarkTokensWriter: 16 chunk-sized row groups through TokensWriter (the
// tokenize stage's writer), into a discarding writer.
func BenchmarkTokensWriter(b *testing.B) {
	t := benchTokensTable()
	b.SetBytes(16 * int64(len(t.Flat)) * 4)
	b.ReportAllocs()
	for b.Loop() {
		tw, err := NewTokensWriter(io.Discard, "bench")
		if err != nil {
			b.Fatal(err)
		}
		for range 16 {
			if err := tw.WriteTable(t); err != nil {
				b.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanTokensTables reads back what BenchmarkTokensWriter writes (from
// a file, as the pack stage reads tokens).
func BenchmarkScanTokensTables(b *testing.B) {
	t := benchTokensTable()
	path := filepath.Join(b.TempDir(), "tokens.parquet")
	writeTokenGroups(b, path, slices.Repeat([]TokensTable{t}, 16))
	for _, name := range []string{"checked", "unchecked"} {
		b.Run(name, func(b *testing.B) {
			defer uncheckedBodies(name == "unchecked")()
			b.SetBytes(16 * int64(len(t.Flat)) * 4)
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := ScanTokensTables(path, func(got TokensTable) error { n += len(got.Flat); return nil }); err != nil {
					b.Fatal(err)
				}
				if n != 16*len(t.Flat) {
					b.Fatalf("read %d tokens, want %d", n, 16*len(t.Flat))
				}
			}
		})
	}
}

// uncheckedBodies turns the page guard's checkBody off when off is set, to
// measure what its checks cost, and returns what turns it back on.
func uncheckedBodies(off bool) func() {
	skipBodyChecks = off
	return func() { skipBodyChecks = false }
}

// BenchmarkScanText reads a text/v1 shard laid out as the download stage
// writes it (8 MB of text in 60,000 documents, Snappy, row groups of 8,192)
// the two ways the tokenize stage could: ScanTextAt's pages, and the row
// reader with each text copied out of its reused buffers (what the stage did
// before ScanTextAt); then ScanTextsAt over the same texts in a nullable
// column (as Arrow writers make them; every tenth null), through its pages and
// through the row reader of the text column alone, each batch's texts copied
// into one string (its path for such a column before it read them page by
// page); and ScanTextAt's pages of the shard written with GZIP, Brotli, ZSTD
// and LZ4_RAW. The -unchecked runs turn the page guard's checkBody off, to
// measure what its checks cost.
func BenchmarkScanText(b *testing.B) {
	rows := make([]TextRow, 60_000)
	size := 0
	for i := range rows {
		words := make([]string, 5+(i*7919)%40)
		for j := range words {
			words[j] = fmt.Sprintf("w%d", (i*31+j*17)%5000)
		}
		rows[i] = TextRow{ID: int64(i), Text: strings.Join(words, " ")}
		size += len(rows[i].Text)
	}
	path := filepath.Join(b.TempDir(), "train-00000.parquet")
	if err := WriteParquet(path, rows, 8192); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(data)
	run := func(name string, read func() (int, error)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := read(); err != nil || n != len(rows) {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
		})
	}
	pages := func() (int, error) {
		n := 0
		err := ScanTextAt(r, int64(len(data)), path, func(t TextBatch) error { n += len(t.Texts); return nil })
		return n, err
	}
	run("pages", pages)
	run("pages-unchecked", func() (int, error) {
		defer uncheckedBodies(true)()
		return pages()
	})
	nullable := make([]nullableTextRow, len(rows))
	for i := range rows {
		if i%10 != 9 {
			nullable[i].Text = &rows[i].Text
		}
	}
	var nb bytes.Buffer
	w := parquet.NewGenericWriter[nullableTextRow](&nb, parquet.Compression(&snappy.Codec{}), parquet.MaxRowsPerRowGroup(8192))
	if _, err := w.Write(nullable); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	nr := bytes.NewReader(nb.Bytes())
	run("nullable-pages", func() (int, error) {
		n := 0
		err := ScanTextsAt(nr, int64(nb.Len()), path, func(t []string) error { n += len(t); return nil })
		return n, err
	})
	run("nullable-rows", func() (int, error) {
		n := 0
		err := ScanParquetAt(nr, int64(nb.Len()), path, []string{"text"}, func(batch []textOnlyRow) error {
			size := 0
			for _, row := range batch {
				size += len(row.Text)
			}
			var b strings.Builder // the texts copied into one string a batch, as the row path did
			b.Grow(size)
			for _, row := range batch {
				b.WriteString(row.Text)
			}
			n += len(batch)
			return nil
		})
		return n, err
	})
	// The same shard with each other codec: the page guard decodes each
	// page of these once more before parquet-go does (checkBody), Snappy's
	// only by its stated length.
	for _, c := range codecs[2:] {
		var cb bytes.Buffer
		w := parquet.NewGenericWriter[TextRow](&cb, parquet.Compression(c.codec), parquet.MaxRowsPerRowGroup(8192))
		if _, err := w.Write(rows); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		cr := bytes.NewReader(cb.Bytes())
		read := func() (int, error) {
			n := 0
			err := ScanTextAt(cr, int64(cb.Len()), path, func(t TextBatch) error { n += len(t.Texts); return nil })
			return n, err
		}
		run("pages-"+strings.ToLower(c.name), read)
		run("pages-"+strings.ToLower(c.name)+"-unchecked", func() (int, error) {
			defer uncheckedBodies(true)()
			return read()
		})
	}
	run("rows", func() (int, error) {
		var texts []string
		err := ScanParquetAt(r, int64(len(data)), path, []string{"id", "text"}, func(batch []TextRow) error {
			for _, row := range batch {
				texts = append(texts, strings.Clone(row.Text))
			}
			return nil
		})
		return len(texts), err
	})
}

// nullableTextRow is a document whose text may be null.
type nullableTextRow struct {
	Text *string `parquet:"text,optional"`
}
