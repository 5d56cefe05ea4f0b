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
	"sync"
	"testing"

	"github.com/mdlm-go/mdlm/pipeline"
)

// TestHostileConcurrentRuns: two `mdlm run` on one pipeline and cache both
// succeed (the second waits, then finds the outputs built) and leave no work
// directory or temporary (issue 19, defect 7).
func TestHostileConcurrentRuns(t *testing.T) {
	dir, _, file := testPipelineFiles(t)
	cache := filepath.Join(dir, "cache")
	var wg sync.WaitGroup
	results := make([]string, 2)
	codes := make([]int, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errb bytes.Buffer
			codes[i] = run(context.Background(), []string{"run", file, "--cache-dir", cache}, &out, &errb)
			results[i] = errb.String() + out.String()
		}()
	}
	wg.Wait()
	for i := range results {
		if codes[i] != 0 {
			t.Errorf("run %d: exit %d\n%s", i, codes[i], results[i])
		}
	}
	// Each stage was built once: the run that waited found it built.
	if n := strings.Count(results[0]+results[1], "$ mdlm "); n != 3 {
		t.Errorf("%d stage processes for 3 stages:\n%s\n%s", n, results[0], results[1])
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	var outs int
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".work"), strings.HasSuffix(name, ".partial"), strings.Contains(name, ".tmp-"):
			t.Errorf("left behind: %s", name)
		case !strings.HasPrefix(name, "."):
			outs++
		}
	}
	if outs != 3 {
		t.Errorf("%d outputs in the cache, want 3: %v", outs, entries)
	}
	if again := runPipeline(t, file, cache); strings.Count(again, " cached ") != 3 {
		t.Errorf("after two concurrent runs:\n%s", again)
	}
}

// TestHostileLogsOnStderr: standard output carries only results, in every
// mode; the log (decisions, stage commands, stage logs) goes to standard
// error (issue 19, defect 14).
func TestHostileLogsOnStderr(t *testing.T) {
	dir, _, file := testPipelineFiles(t)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"run", file, "--cache-dir", filepath.Join(dir, "cache")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, log := range []string{"$ mdlm", " run ", "done in"} {
		if strings.Contains(out.String(), log) {
			t.Errorf("standard output holds the log line %q:\n%s", log, out.String())
		}
		if !strings.Contains(errb.String(), log) {
			t.Errorf("standard error lacks %q:\n%s", log, errb.String())
		}
	}
	if !strings.Contains(out.String(), "blocks ") {
		t.Errorf("standard output lacks the results:\n%s", out.String())
	}
	if testing.Short() {
		return
	}
	bin := buildBinary(t, dir)
	cmd := exec.Command(bin, "run", file, "--cache-dir", filepath.Join(dir, "cache-j"), "-j", "2")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mdlm run -j 2: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "[text]") || strings.Contains(stdout.String(), "$ mdlm") {
		t.Errorf("-j 2: standard output holds logs:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "[text]") || !strings.Contains(stdout.String(), "blocks ") {
		t.Errorf("-j 2: stdout %q\nstderr %q", stdout.String(), stderr.String())
	}
}

// TestHostileLockFileDigest: an output whose manifest digest disagrees with
// the lock file's digest for the same key (a manifest edited to match edited
// files) is rerun, with that reason (issue 19, defect 16c).
func TestHostileLockFileDigest(t *testing.T) {
	dir, _, file := testPipelineFiles(t)
	cache := filepath.Join(dir, "cache")
	runPipeline(t, file, cache)
	lockFile := file + ".lock.json"
	raw, err := os.ReadFile(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	var lock map[string]pipeline.LockEntry
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatal(err)
	}
	e := lock["text"]
	e.Digest = "sha256:" + strings.Repeat("0", 64) // what the lock recorded
	lock["text"] = e
	raw, _ = json.Marshal(lock)
	if err := os.WriteFile(lockFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	plan := runPipeline(t, file, cache, "--dry-run")
	if !strings.Contains(plan, "text         run") || !strings.Contains(plan, "differs from the lock file's sha256:0000000000") {
		t.Fatalf("plan after the lock file disagreed:\n%s", plan)
	}
	runPipeline(t, file, cache)
	if again := runPipeline(t, file, cache, "--dry-run"); strings.Count(again, " cached ") != 3 {
		t.Errorf("after the rerun:\n%s", again)
	}
}

// TestHostilePipelineFile: a stage name that is a path (defect 5) and keys
// the format does not define (defect 12) are refused with file:line, and
// nothing is written outside the cache.
func TestHostilePipelineFile(t *testing.T) {
	dir, src, _ := testPipelineFiles(t)
	work := filepath.Join(dir, "a", "b")
	os.MkdirAll(work, 0o755)
	cases := []struct{ body, want string }{
		{fmt.Sprintf("version: 1\nstages:\n  ../../../x: {run: download, with: {sources: [%s]}}\n", src), `p.yaml:3: stage name "../../../x"`},
		{fmt.Sprintf("version: 1\nstagez:\n  a: {run: download, with: {sources: [%s]}}\n", src), `p.yaml:2: unknown key "stagez"`},
		{fmt.Sprintf("version: 1\nstages:\n  a: {run: download, whith: {sources: [%s]}}\n", src), `did you mean "with"?`},
	}
	for _, c := range cases {
		file := filepath.Join(work, "p.yaml")
		os.WriteFile(file, []byte(c.body), 0o644)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"run", file, "--cache-dir", filepath.Join(work, "cache")}, &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %q", c.body, code, errb.String(), c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a stage named ../../../x wrote outside the cache")
	}
}
