package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/pipeline"
)

// --stage runs one stage and refuses while a stage it needs is not built.
func TestRunSingleStage(t *testing.T) {
	dir, _, file := testPipelineFiles(t)
	cache := filepath.Join(dir, "cache")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"run", file, "--cache-dir", cache, "--stage", "blocks"}, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), `needs stage "text"`) {
		t.Fatalf("blocks before its inputs: exit %d\n%s", code, errb.String())
	}
	for _, st := range []string{"text", "tokens", "blocks"} {
		o := runPipeline(t, file, cache, "--stage", st)
		if !strings.Contains(o, st) || strings.Count(o, " run ") != 1 {
			t.Errorf("--stage %s ran something else:\n%s", st, o)
		}
	}
	if again := runPipeline(t, file, cache); strings.Count(again, " cached ") != 3 {
		t.Errorf("stages run one by one are not cached:\n%s", again)
	}
}

// The pipeline on a real Slurm cluster (scripts/test.sh starts the local one
// from ../shared/scripts when it can): a sharded tokenize as an array job,
// afterok chaining, a rerun that submits nothing, and a failing stage reported.
func TestRunOnSlurm(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if err := exec.Command("scontrol", "ping").Run(); err != nil || os.Getenv("SLURM_CONF") == "" {
		t.Skip("no Slurm cluster (start one: eval \"$(../shared/scripts/start-local-slurm.sh)\")")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	os.Chmod(dir, 0o755) // the jobs may run as another user than the test's temp dir owner
	var lines []string
	for i := 0; i < 300; i++ {
		lines = append(lines, strings.Repeat("word ", i%17)+"line")
	}
	os.WriteFile(filepath.Join(dir, "corpus.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(`version: 1
name: slurmtest
vars: {length: 16}
stages:
  text:   {run: download, with: {sources: [corpus.txt], hold-out: 20, shard-rows: 60}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}, shards: 3}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
`), 0o644)
	mdlm := func(args ...string) (string, error) {
		// A cluster that stops running jobs must fail the test, not hang it.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("mdlm %v: no result within 3 minutes (is the Slurm node running jobs?)\n%s", args, out)
		}
		return string(out), err
	}
	out, err := mdlm("run", "p.yaml", "--executor", "slurm", "--wait", "--cache-dir", "cache")
	if err != nil || !strings.Contains(out, "(array of 3)") || !strings.Contains(out, "all 3 jobs completed") {
		t.Fatalf("slurm run: %v\n%s", err, out)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "cache", "slurm-logs", "tokens-*_*.log"))
	if len(logs) != 3 {
		t.Errorf("tokens array logs: %v", logs)
	}
	out, err = mdlm("run", "p.yaml", "--executor", "slurm", "--cache-dir", "cache")
	if err != nil || !strings.Contains(out, "nothing submitted") {
		t.Errorf("rerun submitted work: %v\n%s", err, out)
	}
	if out, err := mdlm("run", "p.yaml", "--cache-dir", "cache", "--dry-run"); err != nil || strings.Count(out, " cached ") != 3 {
		t.Errorf("local view after Slurm: %v\n%s", err, out)
	}
	// A stage that fails (pack with an impossible length) is reported by --wait.
	out, err = mdlm("run", "p.yaml", "--executor", "slurm", "--wait", "--cache-dir", "cache", "--set", "length=2")
	if err == nil || !strings.Contains(out, "blocks (job") || !strings.Contains(out, "FAILED") {
		t.Errorf("failing stage: %v\n%s", err, out)
	}
}

// A shared cache: a second machine (fresh local cache) takes every stage from
// it; changing only a late stage's flags runs just that stage and shares it.
func TestSharedCache(t *testing.T) {
	dir, _, file := testPipelineFiles(t)
	shared := filepath.Join(dir, "shared")
	first := runPipeline(t, file, filepath.Join(dir, "a"), "--shared", shared)
	if strings.Count(first, " run ") != 3 {
		t.Fatalf("first machine:\n%s", first)
	}
	if dry := runPipeline(t, file, filepath.Join(dir, "b"), "--shared", shared, "--dry-run"); strings.Count(dry, "from the shared cache") != 3 {
		t.Errorf("plan on a second machine:\n%s", dry)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); err == nil {
		t.Error("a dry run copied outputs")
	}
	second := runPipeline(t, file, filepath.Join(dir, "b"), "--shared", shared)
	if strings.Count(second, " cached ") != 3 || strings.Contains(second, "$ mdlm") {
		t.Errorf("second machine ran stages:\n%s", second)
	}
	third := runPipeline(t, file, filepath.Join(dir, "b"), "--shared", shared, "--set", "length=8")
	if strings.Count(third, " cached ") != 2 || strings.Count(third, "$ mdlm") != 1 {
		t.Errorf("length change on the second machine:\n%s", third)
	}
	if entries, _ := filepath.Glob(filepath.Join(shared, "blocks-*")); len(entries) != 2 {
		t.Errorf("shared cache blocks outputs: %v", entries)
	}
	// A corrupted shared copy is not used.
	os.RemoveAll(filepath.Join(dir, "c"))
	blocks, _ := filepath.Glob(filepath.Join(shared, "blocks-*", "*.arrow"))
	for _, b := range blocks {
		data, _ := os.ReadFile(b)
		data[len(data)/2] ^= 0xff
		os.WriteFile(b, data, 0o644)
	}
	fourth := runPipeline(t, file, filepath.Join(dir, "c"), "--shared", shared)
	if !strings.Contains(fourth, "$ mdlm [pack") || strings.Count(fourth, "from the shared cache") != 2 {
		t.Errorf("corrupted shared blocks were used:\n%s", fourth)
	}
	// ... and the rebuilt output replaced it there.
	if fifth := runPipeline(t, file, filepath.Join(dir, "d"), "--shared", shared); strings.Count(fifth, "from the shared cache") != 3 {
		t.Errorf("damaged shared copy not replaced:\n%s", fifth)
	}
}

// --jobs 2 runs independent stages and a sharded stage's shards as parallel
// processes; the result is what a sequential run caches.
func TestRunParallelJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir, _, file := testPipelineFiles(t)
	body, _ := os.ReadFile(file)
	body = []byte(strings.Replace(string(body), "with: {tokenizer: bytes, workers: 1}}", "with: {tokenizer: bytes, workers: 1}, shards: 2}", 1) +
		"  blocks8: {run: pack, inputs: {tokens: tokens}, with: {length: 8}}\n")
	body = []byte(strings.Replace(string(body), "hold-out: 2}", "hold-out: 2, shard-rows: 6}", 1))
	os.WriteFile(file, body, 0o644)
	bin := buildBinary(t, dir)
	cmd := exec.Command(bin, "run", file, "--cache-dir", filepath.Join(dir, "cache"), "-j", "2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mdlm run -j 2: %v\n%s", err, out)
	}
	for _, want := range []string{"[tokens[0/2]]", "[tokens[1/2]]", "[blocks] ", "[blocks8] ", "done in"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if again := runPipeline(t, file, filepath.Join(dir, "cache")); strings.Count(again, " cached ") != 4 {
		t.Errorf("after the parallel run:\n%s", again)
	}
	// With --json, standard output is only the JSON of the stages' outputs.
	cmd = exec.Command(bin, "run", file, "--cache-dir", filepath.Join(dir, "cache2"), "-j", "2", "--json")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("mdlm run -j 2 --json: %v", err)
	}
	var ds []pipeline.Decision
	if err := json.Unmarshal(stdout.Bytes(), &ds); err != nil || len(ds) != 4 || !ds[3].Cached {
		t.Errorf("-j 2 --json: %v %+v\n%s", err, ds, stdout.String())
	}
}

// --wait-inputs: a stage started before its input exists waits for another
// process to build it (Kubernetes starts every Job at once).
func TestRunStageWaitsForInputs(t *testing.T) {
	_, _, file := testPipelineFiles(t)
	cache := filepath.Join(filepath.Dir(file), "cache")
	done := make(chan string)
	go func() {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"run", file, "--cache-dir", cache, "--stage", "tokens", "--wait-inputs", "20s", "--poll", "50ms"}, &out, &errb)
		done <- fmt.Sprintf("exit %d\n%s%s", code, out.String(), errb.String())
	}()
	time.Sleep(200 * time.Millisecond)
	runPipeline(t, file, cache, "--stage", "text")
	got := <-done
	if !strings.HasPrefix(got, "exit 0") || !strings.Contains(got, "waiting up to 20s") || !strings.Contains(got, "$ mdlm [tokenize") {
		t.Errorf("waiting stage:\n%s", got)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"run", file, "--cache-dir", filepath.Join(cache, "other"), "--stage", "blocks", "--wait-inputs", "150ms", "--poll", "50ms"}, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "no verified output") {
		t.Errorf("timed-out wait: exit %d\n%s", code, errb.String())
	}
}

// --sbatch-arg keeps commas inside one argument (node lists, gres lists).
func TestSlurmDryRunArgs(t *testing.T) {
	_, _, file := testPipelineFiles(t)
	out := runPipeline(t, file, filepath.Join(filepath.Dir(file), "cache"), "--executor", "slurm", "--dry-run",
		"--sbatch-arg=--nodelist=a,b", "--sbatch-arg=--mem=1G")
	if strings.Count(out, " --nodelist=a,b --mem=1G ") != 3 {
		t.Errorf("sbatch commands:\n%s", out)
	}
}

// --json: the plan (or the run's decisions) as JSON on standard output, for CI.
func TestRunJSON(t *testing.T) {
	_, _, file := testPipelineFiles(t)
	cache := filepath.Join(filepath.Dir(file), "cache")
	decisions := func(extra ...string) []pipeline.Decision {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"run", file, "--cache-dir", cache, "--json"}, extra...), &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var ds []pipeline.Decision
		if err := json.Unmarshal(out.Bytes(), &ds); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
		}
		return ds
	}
	plan := decisions("--dry-run")
	if len(plan) != 3 || plan[0].Cached || plan[0].Reasons[0] != "never ran (no lock entry)" {
		t.Errorf("plan: %+v", plan)
	}
	ran := decisions()
	if len(ran) != 3 || ran[2].Cached || ran[2].Seconds <= 0 {
		t.Errorf("run: %+v", ran)
	}
	if again := decisions("--dry-run"); !again[0].Cached || !again[2].Cached {
		t.Errorf("rerun plan: %+v", again)
	}
}
