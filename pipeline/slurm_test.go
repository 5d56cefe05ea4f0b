package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSlurm writes sbatch and scontrol stand-ins: sbatch logs its arguments and
// prints increasing job ids; scontrol reports the state listed in states/<id>
// (COMPLETED when absent).
func fakeSlurm(t *testing.T) (dir string) {
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "sbatch"), []byte(`#!/bin/sh
d=$(dirname "$0")
n=$(( $(cat "$d/next" 2>/dev/null || echo 100) + 1 ))
echo $n > "$d/next"
printf '%s\n' "$@" > "$d/job-$n.args"
echo "$n;cluster"
`), 0o755)
	os.WriteFile(filepath.Join(dir, "scontrol"), []byte(`#!/bin/sh
d=$(dirname "$0")
n=$(( $(cat "$d/calls-$4" 2>/dev/null || echo 0) + 1 ))
echo $n > "$d/calls-$4"
if [ -f "$d/states/$4.$n" ]; then cat "$d/states/$4.$n"; exit 0; fi
s=COMPLETED
[ -f "$d/states/$4" ] && s=$(cat "$d/states/$4")
echo "JobId=$4 JobName=x JobState=$s Reason=None"
`), 0o755)
	os.MkdirAll(filepath.Join(dir, "states"), 0o755)
	return dir
}

func TestSlurmSubmitsStagesWithDependencies(t *testing.T) {
	bin := fakeSlurm(t)
	f := loadTestPipeline(t, `version: 1
name: owt
stages:
  text:   {run: download, with: {sources: [SRC]}}
  tokens: {run: tokenize, inputs: {text: text}, shards: 4}
  blocks: {run: pack, inputs: {tokens: tokens}}
  model:  {run: train, inputs: {data: blocks}, slurm: {gres: "gpu:1", time: "2-00:00:00"}}
  ppl:    {run: eval, inputs: {model: model, data: blocks}}
`)
	work, file := filepath.Dir(f.Path), f.Path
	var out bytes.Buffer
	s := &Slurm{Bin: "/opt/mdlm", Sbatch: filepath.Join(bin, "sbatch"), Extra: []string{"--partition=gpu"},
		LogDir: filepath.Join(work, "logs"), Dir: work, RunArgs: []string{"--cache-dir", "/shared/cache"}, Out: &out}
	jobs, err := s.Submit(context.Background(), &Engine{CacheDir: filepath.Join(work, "cache")}, f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		id, deps string
		array    int
	}{"text": {"101", "", 0}, "tokens": {"102", "101", 4}, "blocks": {"103", "102", 0}, "model": {"104", "103", 0}, "ppl": {"105", "103:104", 0}}
	if len(jobs) != 5 {
		t.Fatalf("%d jobs: %+v", len(jobs), jobs)
	}
	for _, j := range jobs {
		w := want[j.Stage]
		if j.ID != w.id || strings.Join(j.Deps, ":") != w.deps || j.Array != w.array {
			t.Errorf("%s: id %s deps %v array %d, want %+v", j.Stage, j.ID, j.Deps, j.Array, w)
		}
		raw, _ := os.ReadFile(filepath.Join(bin, "job-"+j.ID+".args"))
		args := string(raw)
		for _, must := range []string{"--parsable", "--kill-on-invalid-dep=yes", "--partition=gpu", "--chdir=" + work,
			"--wrap=/opt/mdlm run " + file + " --stage " + j.Stage + " --cache-dir /shared/cache"} {
			if !strings.Contains(args, must) {
				t.Errorf("%s: sbatch args lack %q:\n%s", j.Stage, must, args)
			}
		}
		if w.deps != "" && !strings.Contains(args, "--dependency=afterok:"+w.deps) || w.array > 0 && !strings.Contains(args, "--array=0-3") {
			t.Errorf("%s: dependency/array missing:\n%s", j.Stage, args)
		}
		if gpu := strings.Contains(args, "--gres=gpu:1\n--time=2-00:00:00"); gpu != (j.Stage == "model") {
			t.Errorf("%s: per-stage slurm options (want only on model):\n%s", j.Stage, args)
		}
	}
	// Waiting reports the stage whose job failed and the one cancelled after it.
	os.WriteFile(filepath.Join(bin, "states", "103"), []byte("FAILED"), 0o644)
	os.WriteFile(filepath.Join(bin, "states", "104"), []byte("CANCELLED"), 0o644)
	err = s.Wait(context.Background(), jobs, time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "blocks (job 103: FAILED") || !strings.Contains(err.Error(), "model (job 104: CANCELLED") {
		t.Errorf("Wait: %v", err)
	}
	os.Remove(filepath.Join(bin, "states", "103"))
	os.Remove(filepath.Join(bin, "states", "104"))
	if err := s.Wait(context.Background(), jobs, time.Millisecond); err != nil {
		t.Errorf("Wait with every job completed: %v", err)
	}
	// An array task that failed early is remembered after scontrol forgets it.
	os.WriteFile(filepath.Join(bin, "states", "102.1"), []byte("JobId=106 ArrayJobId=102 ArrayTaskId=0 JobState=FAILED\nJobId=102 ArrayJobId=102 ArrayTaskId=1 JobState=RUNNING\n"), 0o644)
	os.WriteFile(filepath.Join(bin, "states", "102.2"), []byte("JobId=102 ArrayJobId=102 ArrayTaskId=1 JobState=COMPLETED\n"), 0o644)
	os.Remove(filepath.Join(bin, "calls-102"))
	err = s.Wait(context.Background(), jobs[1:2], time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "tokens (job 102: COMPLETED,FAILED") {
		t.Errorf("early array-task failure: %v", err)
	}
}

func TestShardsValidation(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		`  a: {run: download, shards: 2}`:               "download does not split into shards",
		`  a: {run: download, shards: 0}`:               "want a whole number",
		`  a: {run: download, shards: x}`:               "want a whole number",
		`  a: {run: download, slurm: {"--gres": 1}}`:    "want an sbatch long option name",
		`  a: {run: download, kubernetes: {"GPU!": 1}}`: "want a resource name",
	} {
		file := filepath.Join(dir, "p.yaml")
		os.WriteFile(file, []byte("version: 1\nstages:\n"+body+"\n"), 0o644)
		if _, err := Load(file, nil, reg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", body, err, want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"/bin/mdlm", "run", "a b.yaml", "--set", "x=it's", ""})
	if want := `/bin/mdlm run 'a b.yaml' --set 'x=it'\''s' ''`; got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

// Jobs finishing at once each merge their entry into the lock file.
func TestUpdateLockConcurrent(t *testing.T) {
	f := &File{Path: filepath.Join(t.TempDir(), "p.yaml")}
	errs := make(chan error)
	for i := 0; i < 16; i++ {
		go func() {
			errs <- updateLock(f, map[string]LockEntry{string(rune('a' + i)): {Key: "k", Digest: "d"}})
		}()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if lock := readLock(f); len(lock) != 16 {
		t.Errorf("lock has %d entries, want 16", len(lock))
	}
}

// Every pipeline file we ship loads and validates.
func TestShippedPipelinesLoad(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "pipelines", "*.yaml"))
	if len(files) < 2 {
		t.Fatalf("pipelines: %v", files)
	}
	for _, file := range files {
		f, err := Load(file, nil, reg)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		t.Logf("%s: stages %v", file, f.Order)
	}
}
