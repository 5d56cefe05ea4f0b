package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/pipeline"
)

// sweepPipeline is testPipeline plus a tiny sweep (issue 24): two training
// seeds, each evaluated, and sampled at two step counts.
const sweepPipeline = testPipeline + `  model:
    run: train
    matrix: {seed: [1, 2]}
    inputs: {data: blocks}
    with: {seed: "${seed}", steps: 2, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1,
           eval-every: 100, eval-blocks: 2, checkpoint-every: 100, log-every: 1}
  ppl:
    run: eval
    matrix: {seed: [1, 2]}
    inputs: {model: "model@seed=${seed}", data: blocks}
    with: {split: valid, batch: 2, max-blocks: 2}
  samples:
    run: sample
    matrix: {seed: [1, 2], steps: [2, 4]}
    inputs: {model: "model@seed=${seed}"}
    with: {steps: "${steps}", num: 1, seed: 1}
`

// sweepExpansions are the stages sweepPipeline expands to, in plan order.
var sweepExpansions = []string{"model@seed=1", "model@seed=2", "ppl@seed=1", "ppl@seed=2",
	"samples@seed=1,steps=2", "samples@seed=1,steps=4", "samples@seed=2,steps=2", "samples@seed=2,steps=4"}

func sweepFiles(t *testing.T) (dir, file string) {
	t.Helper()
	dir, src, _ := testPipelineFiles(t)
	file = filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(sweepPipeline, "SRC", src)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

// TestSweepDryRun: --dry-run lists every expansion by name, and --json gives
// each its axis values.
func TestSweepDryRun(t *testing.T) {
	dir, file := sweepFiles(t)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"run", file, "--dry-run", "--cache-dir", filepath.Join(dir, "cache")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, name := range append([]string{"text", "tokens", "blocks"}, sweepExpansions...) {
		if !strings.Contains(out.String(), name+" ") {
			t.Errorf("--dry-run does not show %s:\n%s", name, out.String())
		}
	}
	for _, bare := range []string{"model ", "ppl ", "samples "} {
		if strings.Contains(out.String(), "\n"+bare) {
			t.Errorf("--dry-run shows the matrix stage %q itself:\n%s", bare, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"run", file, "--dry-run", "--json", "--cache-dir", filepath.Join(dir, "cache")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var ds []pipeline.Decision
	if err := json.Unmarshal(out.Bytes(), &ds); err != nil {
		t.Fatal(err)
	}
	matrix := map[string]map[string]string{}
	for _, d := range ds {
		matrix[d.Stage] = d.Matrix
	}
	if m := matrix["samples@seed=2,steps=4"]; m["seed"] != "2" || m["steps"] != "4" {
		t.Errorf("samples@seed=2,steps=4: matrix %v", m)
	}
	if m, ok := matrix["blocks"]; !ok || m != nil {
		t.Errorf("blocks: matrix %v (present %v)", m, ok)
	}
}

// TestSweepRunsEveryExpansion runs a tiny sweep end to end: each expansion
// publishes its own verified artifact in its own directory, the models of the
// two seeds differ, and a rerun is all cached.
func TestSweepRunsEveryExpansion(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains two models")
	}
	dir, file := sweepFiles(t)
	cache := filepath.Join(dir, "cache")
	first := runPipeline(t, file, cache)
	if n := strings.Count(first, " run "); n != 3+len(sweepExpansions) {
		t.Errorf("first run ran %d stages, want %d:\n%s", n, 3+len(sweepExpansions), first)
	}
	dirs := map[string]string{}
	for _, name := range sweepExpansions {
		o := stageOutput(t, cache, name)
		if other, dup := dirs[o.Dir]; dup {
			t.Errorf("%s and %s share %s", other, name, o.Dir)
		}
		dirs[o.Dir] = name
	}
	if a, b := stageOutput(t, cache, "model@seed=1"), stageOutput(t, cache, "model@seed=2"); a.Digest() == b.Digest() {
		t.Errorf("the two seeds trained the same model (%s)", a.Digest())
	}
	if a, b := stageOutput(t, cache, "samples@seed=1,steps=2"), stageOutput(t, cache, "samples@seed=1,steps=4"); a.Digest() == b.Digest() {
		t.Errorf("two step counts gave the same samples (%s)", a.Digest())
	}
	if again := runPipeline(t, file, cache); strings.Count(again, " cached ") != 3+len(sweepExpansions) {
		t.Errorf("unchanged rerun should skip every stage:\n%s", again)
	}
}

// TestSweepErrorsNameTheLine: a sweep's mistakes reach the user as file:line.
func TestSweepErrorsNameTheLine(t *testing.T) {
	dir, src, _ := testPipelineFiles(t)
	base := strings.ReplaceAll(testPipeline, "SRC", src)
	cases := []struct{ body, want string }{
		{base + "  p:\n    run: pack\n    matrix: {n: []}\n    inputs: {tokens: tokens}\n    with: {length: \"${n}\"}\n",
			"sweep.yaml:10: stage \"p\": matrix axis \"n\": empty list"},
		{base + "  p:\n    run: pack\n    matrix: {n: [8]}\n    inputs: {tokens: tokens}\n    with: {length: \"${m}\"}\n",
			"sweep.yaml:9: stage \"p\": matrix axis \"n\" is used nowhere"},
		{base + "  p:\n    run: pack\n    matrix: {n: [8, 8]}\n    inputs: {tokens: tokens}\n    with: {length: \"${n}\"}\n",
			"is already listed at line 10"},
	}
	file := filepath.Join(dir, "sweep.yaml")
	for _, c := range cases {
		if err := os.WriteFile(file, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"run", file, "--dry-run"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("exit %d, stderr %q; want %q", code, errb.String(), c.want)
		}
	}
}
