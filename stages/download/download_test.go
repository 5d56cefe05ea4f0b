package download

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

func readSplit(t *testing.T, dir, split string) []datasets.TextRow {
	t.Helper()
	files, err := datasets.Shards(dir, split)
	if err != nil {
		t.Fatal(err)
	}
	var rows []datasets.TextRow
	for _, f := range files {
		if err := datasets.ScanParquet(f, []string{"id", "text"}, func(b []datasets.TextRow) error {
			for _, r := range b {
				rows = append(rows, datasets.TextRow{ID: r.ID, Text: strings.Clone(r.Text)})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

func TestLocalSources(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("one\ntwo\n\nthree four\n"), 0o644)
	gz, _ := os.Create(filepath.Join(src, "b.jsonl.gz"))
	zw := gzip.NewWriter(gz)
	fmt.Fprintln(zw, `{"text": "five", "label": 1}`)
	fmt.Fprintln(zw, `{"text": "six"}`)
	zw.Close()
	gz.Close()
	datasets.WriteParquet(filepath.Join(src, "c.parquet"), []datasets.TextRow{{ID: 9, Text: "seven"}, {ID: 10, Text: "eight"}}, 10)

	out := filepath.Join(t.TempDir(), "text")
	m, err := run(Options{Sources: []string{src}, Out: out, TextSplit: string(datasets.ByLine), HoldOut: 2, ShardRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != artifact.TextType {
		t.Errorf("type %q", m.Type)
	}
	train, valid := readSplit(t, out, "train"), readSplit(t, out, "valid")
	var texts []string
	for _, r := range append(train, valid...) {
		texts = append(texts, r.Text)
	}
	want := []string{"one", "two", "", "three four", "five", "six", "seven", "eight"}
	if strings.Join(texts, "|") != strings.Join(want, "|") || len(valid) != 2 || valid[0].ID != 6 {
		t.Errorf("documents %q (valid %v), want %q with the last 2 in valid", texts, valid, want)
	}
	if shards, _ := datasets.Shards(out, "train"); len(shards) != 2 {
		t.Errorf("train shards %v, want 2 of at most 3 rows", shards)
	}
	// paragraph mode
	out2 := filepath.Join(t.TempDir(), "p")
	if _, err := run(Options{Sources: []string{filepath.Join(src, "a.txt")}, Out: out2, TextSplit: string(datasets.ByParagraph)}); err != nil {
		t.Fatal(err)
	}
	if rows := readSplit(t, out2, "train"); len(rows) != 2 || rows[0].Text != "one\ntwo" {
		t.Errorf("paragraphs %v", rows)
	}
}

func TestBadInputsPublishNothing(t *testing.T) {
	src := t.TempDir()
	datasets.WriteParquet(filepath.Join(src, "no_text.parquet"), []datasets.TokensRow{{ID: 1, IDs: []int32{1}}}, 10)
	good := filepath.Join(src, "good.parquet")
	datasets.WriteParquet(good, []datasets.TextRow{{ID: 1, Text: strings.Repeat("x", 5000)}}, 10)
	data, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(src, "truncated.parquet"), data[:len(data)/2], 0o644)
	os.WriteFile(filepath.Join(src, "bad.jsonl"), []byte(`{"body": "x"}`+"\n"), 0o644)
	cases := []struct {
		src, mention string
	}{
		{"no_text.parquet", `missing column "text"`},
		{"truncated.parquet", "truncated.parquet"},
		{"bad.jsonl", `no field "text"`},
		{"missing.txt", "missing.txt"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "out")
		_, err := run(Options{Sources: []string{filepath.Join(src, c.src)}, Out: out})
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want mention of %q", c.src, err, c.mention)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: a failed download published %s", c.src, out)
		}
	}
	if _, err := run(Options{Dataset: "openwebtxt", Out: filepath.Join(t.TempDir(), "x")}); err == nil || !strings.Contains(err.Error(), "openwebtext-split") {
		t.Errorf("unknown dataset: err = %v", err)
	}
}

// TestOpenWebTextSplitFromHub runs `download --dataset openwebtext-split` against a
// mock hub serving a small stand-in of the hub's layout (Parquet shards listed,
// never named in the code): the last HoldOut documents, in file order, become valid.
func TestOpenWebTextSplitFromHub(t *testing.T) {
	shardDir := t.TempDir()
	files := map[string][]byte{}
	doc := 0
	for s := 0; s < 3; s++ {
		var rows []datasets.TextRow
		for i := 0; i < 40; i++ {
			rows = append(rows, datasets.TextRow{ID: int64(doc), Text: fmt.Sprintf("document %d", doc)})
			doc++
		}
		p := filepath.Join(shardDir, fmt.Sprintf("s%d.parquet", s))
		datasets.WriteParquet(p, rows, 16)
		files[fmt.Sprintf("plain_text/train-%05d-of-00003.parquet", s)], _ = os.ReadFile(p)
	}
	files["README.md"] = []byte("stand-in")
	files["plain_text/dataset_info.json"] = []byte("{}")
	c, _ := fakeHub(t, "Skylion007/openwebtext", files)

	reg := datasets.Registry()
	d := reg["openwebtext-split"]
	if d.HoldOut != 100_000 {
		t.Fatalf("openwebtext-split holds out %d documents, want 100000", d.HoldOut)
	}
	// The real rule on a 120-document stand-in: hold out the last 30.
	plan, err := fetchDataset(context.Background(), withHoldOut(d, 30), &Options{Client: c, CacheDir: t.TempDir(), log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "owt")
	_, err = artifact.Publish(out, artifact.Manifest{Type: artifact.TextType}, func(tmp string) error {
		return writeText(tmp, plan, Options{log: quietLog()})
	})
	if err != nil {
		t.Fatal(err)
	}
	train, valid := readSplit(t, out, "train"), readSplit(t, out, "valid")
	if len(train) != 90 || len(valid) != 30 || valid[0].Text != "document 90" || train[89].Text != "document 89" {
		t.Errorf("train %d docs, valid %d docs (first valid %q)", len(train), len(valid), valid[0].Text)
	}
	// And the full stage: publishes with the dataset's parameters.
	out2 := filepath.Join(t.TempDir(), "owt2")
	m, err := run(Options{Dataset: "openwebtext-split", Out: out2, Client: c, CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "hold-out") {
		t.Errorf("a 120-document stand-in cannot hold out 100,000: err = %v (manifest %v)", err, m.Params)
	}
}

func withHoldOut(d datasets.Dataset, n int) datasets.Dataset {
	d.HoldOut = n
	return d
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestURLDatasets(t *testing.T) {
	zipBuf := zipBytes("text8", strings.Repeat("abcdefghij", 30)) // 300 characters
	jsonl := []byte("{\"text\": \"\u201cHello\u201d said he \"}\n{\"text\": \"bye\"}\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text8.zip":
			w.Write(zipBuf)
		case "/lambada_test.jsonl":
			w.Write(jsonl)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := hub.NewClient()
	c.Backoff = time.Millisecond
	reg := datasets.Registry()

	t8 := reg["text8"]
	t8.URL = srv.URL + "/text8.zip"
	t8.CharSplits = map[string][2]int{"train": {0, 200}, "valid": {200, 250}, "test": {250, -1}}
	plan, err := fetchURLDataset(context.Background(), c, t8, t.TempDir(), &Options{ChunkChars: 30, log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "t8")
	if _, err := artifact.Publish(out, artifact.Manifest{Type: artifact.TextType}, func(tmp string) error {
		return writeText(tmp, plan, Options{log: quietLog()})
	}); err != nil {
		t.Fatal(err)
	}
	train, valid, test := readSplit(t, out, "train"), readSplit(t, out, "valid"), readSplit(t, out, "test")
	// 200 chars -> 6 chunks of 30 (20 dropped); 50 -> 1; 50 -> 1.
	if len(train) != 6 || len(valid) != 1 || len(test) != 1 || train[0].Text != "abcdefghijabcdefghijabcdefghij" {
		t.Errorf("text8 chunks: train %d valid %d test %d (%q)", len(train), len(valid), len(test), train[0].Text)
	}

	lam := reg["lambada"]
	lam.URL = srv.URL + "/lambada_test.jsonl"
	plan, err = fetchURLDataset(context.Background(), c, lam, t.TempDir(), &Options{log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0].split != "valid" {
		t.Errorf("lambada plan %+v", plan)
	}
}

func zipBytes(name, content string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create(name)
	w.Write([]byte(content))
	zw.Close()
	return buf.Bytes()
}

// run executes the stage as the command does, with the flags' defaults.
func run(o Options) (artifact.Manifest, error) {
	if o.ShardRows == 0 {
		o.ShardRows = 100000
	}
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.Revision == "" {
		o.Revision = "main"
	}
	return stagetest.Run(context.Background(), Def, &o)
}
