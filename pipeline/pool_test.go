package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadTestPipeline writes body (SRC: a one-line source file) as p.yaml in a
// temporary directory and loads it.
func loadTestPipeline(t *testing.T, body string) *File {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "c.txt")
	os.WriteFile(src, []byte("x\n"), 0o644)
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(strings.ReplaceAll(body, "SRC", src)), 0o644)
	f, err := Load(file, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func poolFile(t *testing.T) *File {
	return loadTestPipeline(t, `version: 1
name: pool
stages:
  text:   {run: download, with: {sources: [SRC]}}
  tokens: {run: tokenize, inputs: {text: text}, shards: 3}
  a:      {run: pack, inputs: {tokens: tokens}, with: {length: 8}}
  b:      {run: pack, inputs: {tokens: tokens}, with: {length: 16}}
  model:  {run: train, inputs: {data: a}}
`)
}

// Stages start only after their inputs finish, shards fan out, and at most
// jobs tasks run at once.
func TestRunPoolOrderAndConcurrency(t *testing.T) {
	f := poolFile(t)
	var mu sync.Mutex
	finished := map[string]int{}
	var now, peak atomic.Int32
	var log []string
	err := RunPool(context.Background(), f, 2, func(_ context.Context, task Task) error {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		mu.Lock()
		for _, from := range f.Stages[task.Stage].Inputs {
			if finished[from] != max(1, f.Stages[from].Shards) {
				t.Errorf("%s started before %s finished", task, from)
			}
		}
		log = append(log, task.String())
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		finished[task.Stage]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 7 || peak.Load() != 2 {
		t.Errorf("tasks %v, peak concurrency %d (want 7 tasks, 2 at once)", log, peak.Load())
	}
}

// A failed stage stops what depends on it; independent work still finishes.
func TestRunPoolFailure(t *testing.T) {
	f := poolFile(t)
	var ran sync.Map
	err := RunPool(context.Background(), f, 3, func(_ context.Context, task Task) error {
		ran.Store(task.Stage, true)
		if task.Stage == "a" {
			return errors.New("boom")
		}
		time.Sleep(10 * time.Millisecond)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "a: boom") || !strings.Contains(err.Error(), "not run: model") {
		t.Fatalf("err = %v", err)
	}
	if _, ok := ran.Load("b"); !ok {
		t.Error("independent stage b did not run")
	}
	if _, ok := ran.Load("model"); ok {
		t.Error("model ran after its input failed")
	}
}
