package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
)

const learnedTokPipeline = `version: 1
name: t
stages:
  text:    {run: download, with: {sources: [SRC], hold-out: 4}}
  bpe:     {run: train-tokenizer, inputs: {text: text}, with: {vocab-size: 300}}
  tokens:  {run: tokenize, inputs: {text: text, tokenizer: bpe}}
  blocks:  {run: pack, inputs: {tokens: tokens}, with: {length: 16}}
  model:   {run: train, inputs: {data: blocks}, with: {steps: 2, seed: 1, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 100, checkpoint-every: 100, log-every: 1}}
  samples: {run: sample, inputs: {model: model}, with: {steps: 4, num: 2, seed: 1}}
  ppl:     {run: eval, inputs: {model: model, data: blocks}, with: {batch: 2}}
`

// TestLearnedTokenizerTravels: a learned tokenizer is carried by the tokens,
// the blocks and the checkpoint (tokenizer.json in each, by that name), so a
// cache moved elsewhere keeps every cache key (a rerun there builds nothing
// and summarises the same bits per byte) and, with the tokenizer artifact
// gone, samples the same text and evaluates the same perplexity; no artifact
// records a path into the cache.
func TestLearnedTokenizerTravels(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "corpus.txt")
	var corpus strings.Builder
	for i := range 60 {
		corpus.WriteString([]string{"in the beginning was the word\n", "and the word was with god\n", "the light shineth in darkness\n"}[i%3])
	}
	os.WriteFile(src, []byte(corpus.String()), 0o644)
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(strings.ReplaceAll(learnedTokPipeline, "SRC", src)), 0o644)
	cache := filepath.Join(dir, "cache")
	first := runPipeline(t, file, cache)

	out := func(prefix string, root string) string {
		m, _ := filepath.Glob(filepath.Join(root, prefix+"-*"))
		if len(m) != 1 {
			t.Fatalf("%s outputs under %s: %v", prefix, root, m)
		}
		return m[0]
	}
	for _, p := range []string{"tokens", "blocks", "model"} {
		d := out(p, cache)
		m, err := artifact.Read(d, "")
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, f := range m.Files {
			listed = listed || f.Path == artifact.TokenizerFile
		}
		if !listed {
			t.Errorf("%s: %s is not in its manifest", d, artifact.TokenizerFile)
		}
		for _, name := range []string{artifact.ManifestName, checkpoint.ConfigFile} {
			raw, err := os.ReadFile(filepath.Join(d, name))
			if err == nil && bytes.Contains(raw, []byte(dir)) {
				t.Errorf("%s/%s records a path into the cache:\n%s", d, name, raw)
			}
		}
	}
	before, err := os.ReadFile(filepath.Join(out("samples", cache), "samples.jsonl"))
	if err != nil {
		t.Fatal(err)
	}

	moved := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(cache, moved); err != nil {
		t.Fatal(err)
	}
	rerun := runPipeline(t, file, moved)
	if n := strings.Count(rerun, " cached "); n != 7 {
		t.Errorf("rerun in the moved cache: %d of 7 stages cached:\n%s", n, rerun)
	}
	if a, b := bitsPerByteLine(t, first), bitsPerByteLine(t, rerun); a != b {
		t.Errorf("summary before the move %q, after %q", a, b)
	}
	if err := os.RemoveAll(out("bpe", moved)); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(t.TempDir(), "samples")
	var so, se bytes.Buffer
	args := []string{"sample", "--checkpoint", out("model", moved), "--steps", "4", "--num", "2", "--seed", "1", "-o", again}
	if code := run(context.Background(), args, &so, &se); code != 0 {
		t.Fatalf("sample from the moved cache: exit %d\n%s%s", code, so.String(), se.String())
	}
	after, err := os.ReadFile(filepath.Join(again, "samples.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !bytes.Contains(after, []byte(`"text"`)) {
		t.Errorf("samples differ after the move:\n%s\n%s", before, after)
	}
	ppl := filepath.Join(t.TempDir(), "ppl")
	args = []string{"eval", "--checkpoint", out("model", moved), "--data", out("blocks", moved), "--batch", "2", "-o", ppl}
	if code := run(context.Background(), args, &so, &se); code != 0 {
		t.Fatalf("eval from the moved cache: exit %d\n%s%s", code, so.String(), se.String())
	}
	if a, b := readMetrics(t, out("ppl", moved)), readMetrics(t, ppl); a != b {
		t.Errorf("eval differs after the move:\n%s\n%s", a, b)
	}
}

// bitsPerByteLine is the summary's line with the evaluation's bits per byte,
// the part that decodes the blocks with their tokenizer.
func bitsPerByteLine(t *testing.T, log string) string {
	t.Helper()
	for line := range strings.Lines(log) {
		if strings.Contains(line, "bits/byte") {
			return line
		}
	}
	t.Fatalf("no bits/byte in the summary:\n%s", log)
	return ""
}

// readMetrics is a metrics artifact's metrics.json.
func readMetrics(t *testing.T, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
