package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEngine runs stages by publishing a text/v1 artifact at their -o path,
// counting the runs.
func fakeEngine(t *testing.T, cache string, runs *int) *Engine {
	return &Engine{CacheDir: cache, Exec: func(_ context.Context, args []string) error {
		*runs++
		testArtifact(t, args[len(args)-1], strings.Join(args[:len(args)-2], " "))
		return nil
	}}
}

// textPipeline writes a one-stage pipeline (a download of one file, with)
// and loads it.
func textPipeline(t *testing.T, dir, with string) *File {
	t.Helper()
	src := filepath.Join(dir, "c.txt")
	if err := os.WriteFile(src, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "p.yaml")
	body := fmt.Sprintf("version: 1\nname: p\nstages:\n  text: {run: download, with: {sources: [%s]%s}}\n", src, with)
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(file, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Writing a flag's default into the pipeline file does not rerun the stage;
// writing another value does (issue 21).
func TestRunExplicitDefaultIsCached(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	runs := 0
	e := fakeEngine(t, cache, &runs)
	if _, err := e.Run(context.Background(), textPipeline(t, dir, "")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		with   string
		cached bool
	}{
		{", hold-out: 0, revision: main, text-split: line", true},
		{", shard-rows: 100000.0", true},
		{", hold-out: 5", false},
	}
	for _, c := range cases {
		ds, err := e.Plan(context.Background(), textPipeline(t, dir, c.with))
		if err != nil {
			t.Fatal(err)
		}
		if ds[0].Cached != c.cached {
			t.Errorf("with %q: cached %v, want %v (reasons %q)", c.with, ds[0].Cached, c.cached, ds[0].Reasons)
		}
	}
	if runs != 1 {
		t.Errorf("%d runs, want 1", runs)
	}
}

// A lock entry and cache directory of the old key format (format 1: the with:
// values as written) are not reused: the stage reruns under its new key, the
// reason says the key format changed, and the lock entry is rewritten in the
// new format.
func TestRunOldKeyFormatReruns(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	f := textPipeline(t, dir, ", hold-out: 1")
	st := f.Stages["text"]
	inputs := map[string]string{}
	if err := fileDigests(st.Spec, st.With, inputs); err != nil {
		t.Fatal(err)
	}
	oldKey, oldParams := formatOneKey(st, inputs)
	oldOut := filepath.Join(cache, "text-"+oldKey[:16])
	testArtifact(t, oldOut, "built by an older mdlm")
	writeLock(t, f, map[string]LockEntry{"text": {Key: oldKey, Kind: "download", Version: st.Spec.Version, Out: oldOut,
		Digest: outputDigest(st.Spec, oldOut), Params: oldParams, Inputs: inputs}})

	runs := 0
	var log bytes.Buffer
	e := fakeEngine(t, cache, &runs)
	e.Log = &log
	ds, err := e.Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	want := "cache key format changed (1 -> 2)"
	if runs != 1 || ds[0].Cached || ds[0].Out == oldOut || len(ds[0].Reasons) == 0 || !strings.HasPrefix(ds[0].Reasons[0], want) {
		t.Fatalf("runs %d, decision %+v; want a rerun in a new directory because %q", runs, ds[0], want)
	}
	if !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say why:\n%s", log.String())
	}
	entry := readLock(f)["text"]
	if entry.Format != KeyFormat || entry.Key != ds[0].Key || entry.Params["hold-out"] != "1" || entry.Params["revision"] != "main" {
		t.Errorf("lock entry after the rerun: %+v", entry)
	}
	if ds, _ := e.Plan(context.Background(), f); !ds[0].Cached {
		t.Errorf("not cached after the rerun: %q", ds[0].Reasons)
	}
}

// formatOneKey is the key (and params) the engine computed before KeyFormat
// 2: the with: values as written, each as its text, without a format field.
func formatOneKey(st *Stage, inputs map[string]string) (string, map[string]any) {
	params := map[string]any{}
	for k, v := range st.With {
		if fl, ok := st.Spec.Flag(k); ok && !fl.Cosmetic {
			params[k] = fmt.Sprint(v)
		}
	}
	canon, _ := json.Marshal(map[string]any{"kind": st.Spec.Kind, "version": st.Spec.Version, "params": params, "inputs": inputs})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), params
}

func writeLock(t *testing.T, f *File, lock map[string]LockEntry) {
	t.Helper()
	raw, err := json.Marshal(lock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath(f), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A lock file over MaxLockBytes is refused before anything runs, naming it.
func TestHostileLockFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	f := textPipeline(t, dir, "")
	big := make([]byte, MaxLockBytes+1)
	for i := range big {
		big[i] = ' '
	}
	if err := os.WriteFile(lockPath(f), big, 0o644); err != nil {
		t.Fatal(err)
	}
	runs := 0
	_, err := fakeEngine(t, filepath.Join(dir, "cache"), &runs).Run(context.Background(), f)
	if err == nil || !strings.Contains(err.Error(), lockPath(f)) || !strings.Contains(err.Error(), "more than") || runs != 0 {
		t.Errorf("err %v, runs %d; want a refusal naming %s before running", err, runs, lockPath(f))
	}
	// One that does not parse is a record lost, not an error: the stage runs.
	os.WriteFile(lockPath(f), []byte("{not json"), 0o644)
	if _, err := fakeEngine(t, filepath.Join(dir, "cache"), &runs).Run(context.Background(), f); err != nil || runs != 1 {
		t.Errorf("unparseable lock file: err %v, runs %d", err, runs)
	}
}

// Deciding writes nothing: a plan of a pipeline with a shared cache holding
// its output copies nothing and takes no lock, and reports it cached.
func TestPlanWritesNothing(t *testing.T) {
	dir := t.TempDir()
	f := textPipeline(t, dir, "")
	cache, shared := filepath.Join(dir, "cache"), filepath.Join(dir, "shared")
	runs := 0
	e := fakeEngine(t, shared, &runs)
	if _, err := e.Run(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	os.Remove(lockPath(f))
	e = &Engine{CacheDir: cache, Shared: shared}
	ds, err := e.Plan(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if !ds[0].Cached || len(ds[0].Reasons) != 1 || !strings.HasPrefix(ds[0].Reasons[0], "from the shared cache") {
		t.Errorf("plan: %+v", ds[0])
	}
	if _, err := os.Stat(cache); err == nil {
		t.Error("a plan created the cache directory")
	}
	if _, err := os.Stat(lockPath(f)); err == nil {
		t.Error("a plan wrote the lock file")
	}
	ds, err = e.Run(context.Background(), f)
	if err != nil || !ds[0].Cached || outputDigest(f.Stages["text"].Spec, ds[0].Out) == "" {
		t.Errorf("run: %+v, %v; want the shared copy pulled", ds, err)
	}
}
