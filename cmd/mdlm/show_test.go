package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/results"
	"github.com/mdlm-go/mdlm/stages"
)

// resultsPipeline is a small real sweep written out by hand: two seeds of a
// tiny model, each evaluated, one sampled.
const resultsPipeline = `version: 1
name: sweep
vars: {length: 16}
stages:
  text:   {run: download, with: {sources: [SRC], hold-out: 4}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes, workers: 1}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
  model-s1: {run: train, inputs: {data: blocks}, with: {steps: STEPS, seed: 1, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 4, eval-blocks: 4, checkpoint-every: 100, log-every: 1}}
  model-s2: {run: train, inputs: {data: blocks}, with: {steps: STEPS, seed: 2, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 4, eval-blocks: 4, checkpoint-every: 100, log-every: 1}}
  ppl-s1: {run: eval, inputs: {model: model-s1, data: blocks}, with: {split: valid, batch: 2, max-blocks: 4}}
  ppl-s2: {run: eval, inputs: {model: model-s2, data: blocks}, with: {split: valid, batch: 2, max-blocks: 4}}
  samples-s1: {run: sample, inputs: {model: model-s1}, with: {steps: 4, num: 2, seed: 1}}
`

// sweepFixture runs resultsPipeline (training steps steps) in dir; it returns
// the pipeline file and the cache directory.
func sweepFixture(t *testing.T, dir, steps string) (file, cache string) {
	t.Helper()
	src := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(src, []byte(strings.Repeat("In the beginning God created the heaven and the earth.\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	file, cache = filepath.Join(dir, "sweep.yaml"), filepath.Join(dir, "cache")
	body := strings.NewReplacer("SRC", src, "STEPS", steps).Replace(resultsPipeline)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, file, cache)
	return file, cache
}

// showOut runs `mdlm show` through a parser holding only ShowCmd (main.go's
// CLI gains it separately) and returns standard output.
func showOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cli struct {
		Show ShowCmd `cmd:""`
	}
	var out bytes.Buffer
	parser, err := kong.New(&cli, kong.Name("mdlm"), kong.Writers(&out, &out), kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(append([]string{"show"}, args...))
	if err != nil {
		return "", err
	}
	kctx.BindTo(context.Background(), (*context.Context)(nil))
	kctx.Bind(slog.New(slog.DiscardHandler), stages.Registry())
	kctx.Stdout = &out
	err = kctx.Run()
	return out.String(), err
}

// The sweep's results through every output format: one row per metrics/v1
// with the differing param (the model's seed) and metrics.json's exact numbers.
func TestShowSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains two tiny models")
	}
	dir := t.TempDir()
	file, cache := sweepFixture(t, dir, "8")
	t.Run("json", func(t *testing.T) { checkShowJSON(t, file, cache) })
	t.Run("cache", func(t *testing.T) {
		out, err := showOut(t, "--cache-dir", cache, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var rows []results.JSONRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
			t.Fatalf("cache rows %v: %s", err, out)
		}
		if rows[0].Stage != "ppl-s1" || rows[1].Stage != "ppl-s2" {
			t.Errorf("cache stages %s, %s", rows[0].Stage, rows[1].Stage)
		}
	})
	t.Run("text", func(t *testing.T) {
		out, err := showOut(t, file, "--cache-dir", cache)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "model.seed") || !strings.Contains(lines[0], "ppl") ||
			!strings.HasPrefix(lines[1], "ppl-s1") || !strings.HasPrefix(lines[2], "ppl-s2") {
			t.Errorf("text table:\n%s", out)
		}
	})
	t.Run("csv", func(t *testing.T) {
		out, err := showOut(t, file, "--cache-dir", cache, "--csv")
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 3 || recs[0][0] != "stage" || recs[0][1] != "model.seed" || recs[1][1] != "1" || recs[2][1] != "2" {
			t.Errorf("csv %v:\n%s", err, out)
		}
	})
	t.Run("md", func(t *testing.T) {
		out, err := showOut(t, file, "--cache-dir", cache, "--md")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, "| stage | model.seed |") || !strings.Contains(out, "| --- |") || strings.Count(out, "\n") != 4 {
			t.Errorf("markdown:\n%s", out)
		}
	})
	t.Run("formats exclusive", func(t *testing.T) {
		if _, err := showOut(t, file, "--json", "--csv"); err == nil {
			t.Error("--json --csv accepted")
		}
	})
	t.Run("diff", func(t *testing.T) { checkShowDiff(t, dir, file, cache) })
}

func checkShowJSON(t *testing.T, file, cache string) {
	out, err := showOut(t, file, "--cache-dir", cache, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want one per metrics/v1 (2):\n%s", len(rows), out)
	}
	lock, err := results.ReadLock(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, stage := range []string{"ppl-s1", "ppl-s2"} {
		var got struct {
			Stage   string
			Params  map[string]string
			Metrics map[string]json.RawMessage
		}
		raw, _ := json.Marshal(rows[i])
		json.Unmarshal(raw, &got)
		if got.Stage != stage || got.Params["model.seed"] != string(rune('1'+i)) || len(got.Params) != 1 {
			t.Errorf("row %d: stage %q params %v, want %s with only model.seed differing", i, got.Stage, got.Params, stage)
		}
		// The numbers are metrics.json's own text.
		mj, err := os.ReadFile(filepath.Join(lock[stage].Out, evaluate.MetricsJSON))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]json.RawMessage
		json.Unmarshal(mj, &want)
		for _, k := range []string{"ppl", "nll", "bpd", "tokens"} {
			if string(got.Metrics[k]) != string(want[k]) || len(want[k]) == 0 {
				t.Errorf("%s %s: show %s, metrics.json %s", stage, k, got.Metrics[k], want[k])
			}
		}
	}
}

// --diff against the lock file committed before a rerun with other params
// names the changed param and the changed metric.
func checkShowDiff(t *testing.T, dir, file, cache string) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", "sweep.yaml", "sweep.yaml.lock.json")
	git("commit", "-q", "-m", "first")
	body, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.ReplaceAll(body, []byte("max-blocks: 4}}\n  samples"), []byte("max-blocks: 2}}\n  samples")), 0o644)
	runPipeline(t, file, cache)
	out, err := showOut(t, file, "--cache-dir", cache, "--diff", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "ppl-s2 (changed): max-blocks 4 -> 2") || !strings.Contains(out, "tokens ") || strings.Contains(out, "ppl-s1 (") {
		t.Errorf("diff does not name what changed:\n%s", out)
	}
	for _, rev := range []string{"--output=/tmp/x", "HEAD:x", "nope"} {
		if _, err := showOut(t, file, "--cache-dir", cache, "--diff="+rev); err == nil {
			t.Errorf("--diff %q accepted", rev)
		}
	}
}

// Issue 24's must-show on a matrix sweep: `mdlm show FILE --json` is a JSON
// array with one object per metrics/v1 (the expansion's stage name, the
// params that differ, the metrics by name as metrics.json has them);
// `--rows seed` pivots it, one line per seed in the file's order.
func TestShowMatrixSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: trains two models")
	}
	dir, file := sweepFiles(t)
	cache := filepath.Join(dir, "cache")
	runPipeline(t, file, cache)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"show", file, "--cache-dir", cache, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("show --json: exit %d: %s", code, errb.String())
	}
	var objs []struct {
		Stage   string
		Params  map[string]string
		Metrics map[string]json.Number
	}
	if err := json.Unmarshal(out.Bytes(), &objs); err != nil || len(objs) != 2 {
		t.Fatalf("show --json: %v\n%s", err, out.String())
	}
	lock, err := readLockForTest(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		seed := strconv.Itoa(i + 1)
		var m struct{ PPL json.Number }
		raw, _ := os.ReadFile(filepath.Join(lock[o.Stage], "metrics.json"))
		json.Unmarshal(raw, &m)
		if o.Stage != "ppl@seed="+seed || o.Params["model.seed"] != seed || len(o.Params) != 1 || o.Metrics["ppl"] == "" || o.Metrics["ppl"] != m.PPL {
			t.Errorf("object %d: %+v, want ppl@seed=%s, params {model.seed: %s}, ppl %s", i, o, seed, seed, m.PPL)
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"show", file, "--cache-dir", cache, "--rows", "seed"}, &out, &errb); code != 0 {
		t.Fatalf("show --rows seed: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "1 ") || !strings.HasPrefix(lines[2], "2 ") ||
		!strings.Contains(lines[1], objs[0].Metrics["ppl"].String()) {
		t.Errorf("show --rows seed:\n%s", out.String())
	}
}
