package traintok

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

var docs = []string{"In the beginning God created the heaven and the earth.",
	"And the earth was without form, and void.", "And God said, Let there be light: and there was light.",
	"And God saw the light, that it was good."}

func TestStagePublishesTokenizer(t *testing.T) {
	text := stagetest.TextArtifact(t, 2, docs...)
	out := filepath.Join(t.TempDir(), "bpe")
	o := &Options{In: text, Out: out, VocabSize: 300, Special: []string{"<|endoftext|>", "[MASK]"}, MinFrequency: 2, Split: "train"}
	m, _, err := stage.Execute(context.Background(), stagetest.Env(), Def, o)
	if err != nil {
		t.Fatal(err)
	}
	man, meta, err := artifact.Open[artifact.TokenizerMeta](out)
	if err != nil {
		t.Fatal(err)
	}
	if man.Digest() != m.Digest() || meta.VocabSize < 259 || meta.VocabSize > 300 || meta.Model != "bpe-bytelevel" || meta.Words == 0 {
		t.Fatalf("manifest %+v, meta %+v", man, meta)
	}
	tok, err := tokenizer.LoadFile(filepath.Join(out, FileName))
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(" the earth")
	if len(ids) >= len(" the earth") {
		t.Errorf("no merges learned: %v", ids)
	}
	// The held-out split is never read: a split without shards is an error.
	o2 := *o
	o2.Out, o2.Split = filepath.Join(t.TempDir(), "bpe2"), "valid"
	if _, _, err := stage.Execute(context.Background(), stagetest.Env(), Def, &o2); err == nil || !strings.Contains(err.Error(), "valid") {
		t.Errorf("valid split: %v", err)
	}
}

// TestTrainFilesAgree: the same documents as a .txt, a .jsonl.gz and a text/v1
// shard give the same tokenizer.json.
func TestTrainFilesAgree(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "c.txt")
	var jl bytes.Buffer
	for _, d := range docs {
		jl.WriteString(`{"text": "` + d + "\\n\"}\n")
	}
	if err := os.WriteFile(txt, []byte(strings.Join(docs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(dir, "c.jsonl.gz")
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(jl.Bytes())
	zw.Close()
	if err := os.WriteFile(gz, zb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := tokenizer.TrainConfig{VocabSize: 280, Special: []string{"<|endoftext|>"}}
	a, _, err := Train(context.Background(), []string{txt}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Train(context.Background(), []string{gz}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error(".txt and .jsonl.gz of the same documents differ")
	}
}

func TestReadCorpusRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bad.jsonl":    "{\"text\": \"a\"}\nnot json\n",
		"notext.json":  "{\"body\": \"a\"}\n",
		"bad.jsonl.gz": "not gzip",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		err := ReadCorpus(context.Background(), p, func([]string) {})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := Train(context.Background(), []string{filepath.Join(dir, "none.txt")}, tokenizer.TrainConfig{VocabSize: 300}); err == nil {
		t.Error("missing file accepted")
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	if _, _, err := Train(context.Background(), []string{empty}, tokenizer.TrainConfig{VocabSize: 300}); err == nil || !strings.Contains(err.Error(), "no text") {
		t.Errorf("empty corpus: %v", err)
	}
}

func TestReadLineLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(p, bytes.Repeat([]byte("a"), MaxDocBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	err := ReadCorpus(context.Background(), p, func([]string) {})
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("over-long document: %v", err)
	}
}
