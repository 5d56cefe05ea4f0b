package tokenize

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// learnedArtifact publishes a tokenizer/v1 artifact holding a BPE learned on docs.
func learnedArtifact(t *testing.T, docs ...string) string {
	t.Helper()
	wc := tokenizer.NewWordCounts([]string{"<|endoftext|>", "[MASK]"})
	wc.Add(docs, 1)
	m, err := tokenizer.TrainBPE(wc, tokenizer.TrainConfig{VocabSize: 300, Special: []string{"<|endoftext|>", "[MASK]"}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bpe")
	_, err = artifact.Publish(dir, artifact.Manifest{Type: artifact.TokenizerType, Stage: "test",
		Params: artifact.Params(artifact.TokenizerMeta{Model: "bpe-bytelevel", VocabSize: 300})}, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, learnedFile), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTokenizeWithLearnedTokenizer(t *testing.T) {
	docs := []string{"the heaven and the earth", "the earth and the heaven", "and the light"}
	text := textArtifact(t, docs...)
	bpe := learnedArtifact(t, docs...)
	out := filepath.Join(t.TempDir(), "tokens")
	m, err := Run(context.Background(), Options{In: text, Out: out, Learned: bpe})
	if err != nil {
		t.Fatal(err)
	}
	bman, _, _ := artifact.Open[artifact.TokenizerMeta](bpe)
	if m.Inputs["tokenizer"] != bman.Digest() {
		t.Errorf("manifest inputs %v: want the tokenizer's digest %s", m.Inputs, bman.Digest())
	}
	_, meta, err := artifact.Open[artifact.TokensMeta](out)
	if err != nil {
		t.Fatal(err)
	}
	// The tokens carry the learned file, by the artifact's own name.
	if meta.Tokenizer != artifact.TokenizerFile {
		t.Fatalf("tokens meta %+v: want the tokens' own %s", meta, artifact.TokenizerFile)
	}
	own, err := os.ReadFile(filepath.Join(out, artifact.TokenizerFile))
	learned, _ := os.ReadFile(filepath.Join(bpe, artifact.TokenizerFile))
	if err != nil || !bytes.Equal(own, learned) {
		t.Fatalf("the tokens' tokenizer.json is not the learned one: %v", err)
	}
	tok, err := tokenizer.Load(filepath.Join(out, meta.Tokenizer))
	if err != nil || tok.VocabSize() != meta.VocabSize || meta.VocabSize <= 258 {
		t.Fatalf("tokens meta %+v, tokenizer %v", meta, err)
	}
	rows := readTokens(t, out)
	if len(rows) != len(docs) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		ids := make([]int, len(r.IDs))
		for i, id := range r.IDs {
			ids[i] = int(id)
		}
		got, err := tok.Decode(ids)
		if err != nil || got != docs[r.ID] || len(ids) >= len(got) {
			t.Errorf("doc %d: %v decodes to %q (%v)", r.ID, ids, got, err)
		}
	}
	if _, err := Run(context.Background(), Options{In: text, Out: filepath.Join(t.TempDir(), "x"), Learned: bpe, Tokenizer: "gpt2"}); err == nil {
		t.Error("--tokenizer with --tokenizer-artifact accepted")
	}
	if _, err := Run(context.Background(), Options{In: text, Out: filepath.Join(t.TempDir(), "y"), Learned: text}); err == nil {
		t.Error("a text/v1 artifact accepted as the tokenizer")
	}
}

// TestTokenizeCarriesTokenizerFile: --tokenizer FILE is copied into the tokens
// as tokenizer.json (listed in the manifest, recorded by that name); nothing in
// the manifest names where the file was, so the tokens outlive it.
func TestTokenizeCarriesTokenizerFile(t *testing.T) {
	docs := []string{"the heaven and the earth", "and the light"}
	text := textArtifact(t, docs...)
	bpe := learnedArtifact(t, docs...)
	srcDir := t.TempDir()
	src := filepath.Join(srcDir, "my-bpe.json")
	data, _ := os.ReadFile(filepath.Join(bpe, artifact.TokenizerFile))
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tokens")
	m, err := Run(context.Background(), Options{In: text, Out: out, Tokenizer: src})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(src)
	listed := false
	for _, f := range m.Files {
		listed = listed || f.Path == artifact.TokenizerFile
	}
	raw, _ := os.ReadFile(filepath.Join(out, artifact.ManifestName))
	if !listed || bytes.Contains(raw, []byte(srcDir)) {
		t.Errorf("manifest lists tokenizer.json %v, names the source's directory %v:\n%s", listed, bytes.Contains(raw, []byte(srcDir)), raw)
	}
	own, _ := os.ReadFile(filepath.Join(out, artifact.TokenizerFile))
	meta, _ := artifact.DecodeMeta[artifact.TokensMeta](m)
	if !bytes.Equal(own, data) || meta.Tokenizer != artifact.TokenizerFile {
		t.Errorf("tokens carry %d bytes (want %d), record tokenizer %q", len(own), len(data), meta.Tokenizer)
	}
	if _, err := artifact.ResolveTokenizer(out, meta.Tokenizer); err != nil {
		t.Errorf("the tokens' own tokenizer does not resolve: %v", err)
	}
}

// TestTokenizeHostileTextTokenizer: a text manifest whose default tokenizer
// is a path is refused naming the text artifact; nothing is published.
func TestTokenizeHostileTextTokenizer(t *testing.T) {
	for _, name := range []string{"../x.json", "sub/tokenizer.json", "/etc/passwd", artifact.TokenizerFile} {
		text := filepath.Join(t.TempDir(), "text")
		_, err := artifact.Publish(text, artifact.Manifest{Type: artifact.TextType, Stage: "test",
			Params: artifact.Params(artifact.TextMeta{Tokenizer: name, TextSplit: "train"})}, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "tokens")
		if _, err := Run(context.Background(), Options{In: text, Out: out}); err == nil || !strings.Contains(err.Error(), text) || !strings.Contains(err.Error(), "tokenizer") {
			t.Errorf("text tokenizer %q: err = %v, want one naming %s and its tokenizer", name, err, text)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("text tokenizer %q: published", name)
		}
	}
}
