package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
)

const testPipeline = `version: 1
name: t
vars: {length: 16}
stages:
  text:   {run: download, with: {sources: [SRC], hold-out: 2}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes, workers: 1}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
`

func runPipeline(t *testing.T, file, cache string, extra ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"run", file, "--cache-dir", cache}, extra...), &out, &errb); code != 0 {
		t.Fatalf("mdlm run: exit %d\n%s%s", code, out.String(), errb.String())
	}
	return errb.String() + out.String() // the log (decisions), then the results
}

// testPipelineFiles writes testPipeline over a small corpus in a temporary dir.
func testPipelineFiles(t *testing.T) (dir, src, file string) {
	t.Helper()
	dir = t.TempDir()
	src = filepath.Join(dir, "corpus.txt")
	os.WriteFile(src, []byte(strings.Repeat("a line of text\n", 20)), 0o644)
	file = filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(strings.ReplaceAll(testPipeline, "SRC", src)), 0o644)
	return dir, src, file
}

// buildBinary builds mdlm into dir for tests that run it as a process.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "mdlm")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOEXPERIMENT=simd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestPipelineCaching(t *testing.T) {
	dir, src, file := testPipelineFiles(t)
	cache := filepath.Join(dir, "cache")

	first := runPipeline(t, file, cache)
	if strings.Count(first, " run ") != 3 {
		t.Fatalf("first run should run 3 stages:\n%s", first)
	}
	second := runPipeline(t, file, cache)
	if strings.Count(second, " cached ") != 3 {
		t.Errorf("unchanged rerun should skip every stage:\n%s", second)
	}
	// A cosmetic flag (workers) does not invalidate.
	os.WriteFile(file, []byte(strings.ReplaceAll(strings.ReplaceAll(testPipeline, "SRC", src), "workers: 1", "workers: 2")), 0o644)
	if again := runPipeline(t, file, cache); strings.Count(again, " cached ") != 3 {
		t.Errorf("changing workers invalidated the cache:\n%s", again)
	}
	// A var override reruns pack only, and says why.
	third := runPipeline(t, file, cache, "--set", "length=8")
	if !strings.Contains(third, "text         cached") || !strings.Contains(third, "tokens       cached") ||
		!strings.Contains(third, "param length changed: 16 -> 8") {
		t.Errorf("length change:\n%s", third)
	}
	// Editing the corpus reruns everything downstream.
	os.WriteFile(src, []byte(strings.Repeat("another line\n", 20)), 0o644)
	fourth := runPipeline(t, file, cache, "--set", "length=8")
	if strings.Count(fourth, " run ") != 3 || !strings.Contains(fourth, "input sources:"+src+" changed") {
		t.Errorf("edited source:\n%s", fourth)
	}
}

func TestPipelineValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ body, mention string }{
		{"version: 1\nstages:\n  a: {run: fly}\n", `unknown stage kind "fly"`},
		{"version: 1\nstages:\n  a: {run: pack, inputs: {tokens: b}}\n", `unknown stage "b"`},
		{"version: 1\nstages:\n  a: {run: pack, inputs: {tokens: b}}\n  b: {run: tokenize, inputs: {text: a}}\n", "wants"},
		{"version: 1\nstages:\n  a: {run: download, with: {colour: red}}\n", "no flag --colour"},
		{"version: 1\nstages:\n  a: {run: tokenize}\n", `missing input "text"`},
		{"version: 2\nstages: {}\n", "version 2"},
		{"version: 1\nstages:\n  a: {run: pack, inputs: {tokens: a}, with: {length: \"${nope}\"}}\n", "undefined var"},
	}
	for _, c := range cases {
		file := filepath.Join(dir, "p.yaml")
		os.WriteFile(file, []byte(c.body), 0o644)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"run", file, "--dry-run"}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.mention) || !strings.Contains(errb.String(), "p.yaml") {
			t.Errorf("%q: exit %d, stderr %q; want mention of %q and the file", c.body, code, errb.String(), c.mention)
		}
	}
}

// A training stage killed mid-run (SIGTERM to `mdlm run`, as a scheduler
// preempting the job) publishes nothing; the rerun resumes it from its work
// directory, says so, and publishes exactly the artifact of an uninterrupted
// run; a third run is a verified cache hit.
func TestPipelineResumesInterruptedTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	src := filepath.Join(dir, "corpus.txt")
	os.WriteFile(src, []byte(strings.Repeat("In the beginning God created the heaven and the earth.\n", 30)), 0o644)
	body := strings.ReplaceAll(testPipeline, "SRC", src) + `  model:  {run: train, inputs: {data: blocks}, with: {steps: 30, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 100, checkpoint-every: 2, log-every: 1}}
`
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(body), 0o644)

	whole := filepath.Join(dir, "whole")
	runPipeline(t, file, whole)
	want := stageOutput(t, whole, "model")

	cache := filepath.Join(dir, "cache")
	cmd := exec.Command(bin, "run", file, "--cache-dir", cache)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=checkpoint step=4 ") {
			cmd.Process.Signal(syscall.SIGTERM)
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if err := cmd.Wait(); err == nil {
		t.Fatal("mdlm run exited 0 after SIGTERM during training")
	}
	out := runPipeline(t, file, cache)
	if !strings.Contains(out, "model        run") || !strings.Contains(out, "resumes the interrupted run in model-") {
		t.Errorf("interrupted training was not resumed:\n%s", out)
	}
	got := stageOutput(t, cache, "model")
	if got.Digest() != want.Digest() {
		t.Errorf("resumed training published %s, an uninterrupted run %s", got.Digest(), want.Digest())
	}
	if again := runPipeline(t, file, cache); !strings.Contains(again, "model        cached") {
		t.Errorf("finished training not cached:\n%s", again)
	}
	if _, err := checkpoint.Open(got.Dir); err != nil {
		t.Errorf("train output does not load as checkpoint/v1: %v", err)
	}
}

// publishedOutput is a stage's verified output in a cache directory.
type publishedOutput struct {
	artifact.Manifest
	Dir string
}

func stageOutput(t *testing.T, cache, stageName string) publishedOutput {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(cache, stageName+"-*"))
	for _, d := range dirs {
		if m, err := artifact.Read(d, ""); err == nil {
			if err := artifact.Verify(d, m); err != nil {
				t.Fatal(err)
			}
			return publishedOutput{m, d}
		}
	}
	t.Fatalf("no published output of stage %s in %s (%v)", stageName, cache, dirs)
	return publishedOutput{}
}

// Editing a file that a flag names (here a tokenizer.json: two vocabulary ids
// swapped) reruns exactly the stages that read it, each with the reason, and
// leaves the others cached; an unchanged rerun is all cached again.
func TestEditedTokenizerFileReruns(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "corpus.txt")
	os.WriteFile(src, []byte(strings.Repeat("the beginning of the heaven and of the earth\n", 20)), 0o644)
	tokFile := filepath.Join(dir, "my", "tokenizer.json")
	os.MkdirAll(filepath.Dir(tokFile), 0o755)
	raw, err := os.ReadFile(filepath.Join("..", "..", "tokenizer", "data", "gpt2-tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(tokFile, raw, 0o644)
	body := `version: 1
name: t
stages:
  text:   {run: download, with: {sources: [SRC], hold-out: 2}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: TOK}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: 16}}
  bytes:  {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
`
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(strings.NewReplacer("SRC", src, "TOK", tokFile).Replace(body)), 0o644)
	cache := filepath.Join(dir, "cache")
	if first := runPipeline(t, file, cache); strings.Count(first, " run ") != 4 {
		t.Fatalf("first run:\n%s", first)
	}

	// Swap the ids of "Ġthe" and "Ġof" in the vocabulary.
	var tok map[string]any
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatal(err)
	}
	vocab := tok["model"].(map[string]any)["vocab"].(map[string]any)
	vocab["Ġthe"], vocab["Ġof"] = vocab["Ġof"], vocab["Ġthe"]
	edited, _ := json.Marshal(tok)
	os.WriteFile(tokFile, edited, 0o644)

	out := runPipeline(t, file, cache)
	for _, want := range []string{
		"text         cached", "bytes        cached", "tokens       run", "blocks       run",
		"input tokenizer:" + tokFile + " changed", "input tokens changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("after editing %s: no %q in\n%s", tokFile, want, out)
		}
	}
	if again := runPipeline(t, file, cache); strings.Count(again, " cached ") != 4 {
		t.Errorf("unchanged rerun:\n%s", again)
	}
}
