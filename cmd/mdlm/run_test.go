package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	if code := run(append([]string{"run", file, "--cache-dir", cache}, extra...), &out, &errb); code != 0 {
		t.Fatalf("mdlm run: exit %d\n%s%s", code, out.String(), errb.String())
	}
	return out.String()
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
	if strings.Count(fourth, " run ") != 3 || !strings.Contains(fourth, "input source:") {
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
		code := run([]string{"run", file, "--dry-run"}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.mention) || !strings.Contains(errb.String(), "p.yaml") {
			t.Errorf("%q: exit %d, stderr %q; want mention of %q and the file", c.body, code, errb.String(), c.mention)
		}
	}
}

// An interrupted training stage is not taken for a finished one: the rerun
// resumes it to the requested steps.
func TestPipelineResumesInterruptedTraining(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "corpus.txt")
	os.WriteFile(src, []byte(strings.Repeat("In the beginning God created the heaven and the earth.\n", 30)), 0o644)
	body := strings.ReplaceAll(testPipeline, "SRC", src) + `  model:  {run: train, inputs: {data: blocks}, with: {steps: "${steps}", batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 100, checkpoint-every: 2}}
`
	body = strings.Replace(body, "vars: {length: 16}", "vars: {length: 16, steps: 4}", 1)
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(body), 0o644)
	cache := filepath.Join(dir, "cache")
	runPipeline(t, file, cache, "--set", "steps=4")
	// Simulate an interruption: drop the final checkpoint, keep step 2.
	var run string
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "model-") {
			run = filepath.Join(cache, e.Name())
		}
	}
	os.RemoveAll(filepath.Join(run, "checkpoints", "step-00000004"))
	os.WriteFile(filepath.Join(run, "checkpoints", "last"), []byte("step-00000002\n"), 0o644)
	out := runPipeline(t, file, cache, "--set", "steps=4")
	if !strings.Contains(out, "model        run") || !strings.Contains(out, "--resume") {
		t.Errorf("interrupted training was not resumed:\n%s", out)
	}
	if again := runPipeline(t, file, cache, "--set", "steps=4"); !strings.Contains(again, "model        cached") {
		t.Errorf("finished training not cached:\n%s", again)
	}
}
