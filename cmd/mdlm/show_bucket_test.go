package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/results"
	"github.com/mdlm-go/mdlm/stages"
	"github.com/mdlm-go/mdlm/webui"
)

// Issue 25: a --cache-dir URL that names no local mirror is refused before
// touching the network.
func TestShowUIRefuseBadBucketURL(t *testing.T) {
	t.Setenv("MDLM_CACHE", t.TempDir())
	for _, args := range [][]string{
		{"show", "--cache-dir", "s3://bkt/../x"},
		{"ui", "--addr", "127.0.0.1:0", "--cache-dir", "s3://bkt/../x"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code == 0 {
			t.Errorf("%v succeeded", args)
		}
		if want := args[0] + ": --cache-dir s3://bkt/../x"; !strings.Contains(errb.String(), want) {
			t.Errorf("%v: stderr %q lacks %q", args, errb.String(), want)
		}
	}
}

// bucketResultsPipeline trains a tiny model, evaluates and samples it.
const bucketResultsPipeline = `version: 1
name: bres
stages:
  text:   {run: download, with: {sources: [SRC], hold-out: 4}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes, workers: 1}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: 16}}
  model:  {run: train, inputs: {data: blocks}, with: {steps: 2, seed: 1, batch: 2, hidden: 16, heads: 2, blocks: 1, cond: 8, warmup: 1, eval-every: 4, eval-blocks: 4, checkpoint-every: 100, log-every: 1}}
  ppl:    {run: eval, inputs: {model: model, data: blocks}, with: {split: valid, batch: 2, max-blocks: 4}}
  samples: {run: sample, inputs: {model: model}, with: {steps: 4, num: 2, seed: 1}}
`

// show and ui on a cache in a bucket: from an emptied local mirror, show
// prints the same table as with the full mirror, having copied back only the
// metrics artifacts (ui also the samples), never a checkpoint or packed data.
func TestShowUIBucketCache(t *testing.T) {
	loc := s3TestEnv(t)
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	t.Setenv("MDLM_CACHE", mirror)
	src := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(src, []byte(strings.Repeat("In the beginning God created the heaven and the earth.\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "bres.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(bucketResultsPipeline, "SRC", src)), 0o644); err != nil {
		t.Fatal(err)
	}
	runPipeline(t, file, loc)

	shows := [][]string{{file, "--cache-dir", loc}, {"--cache-dir", loc}, {file, "--cache-dir", loc, "--json"}}
	full := make([]string, len(shows))
	for i, args := range shows {
		out, errOut, code := mdlm(t, append([]string{"show"}, args...)...)
		if code != 0 {
			t.Fatalf("show %v with the full mirror: exit %d\n%s", args, code, errOut)
		}
		if !strings.Contains(out, "ppl") {
			t.Fatalf("show %v with the full mirror lacks the eval:\n%s", args, out)
		}
		full[i] = out
	}
	for i, args := range shows {
		if err := os.RemoveAll(mirror); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := mdlm(t, append([]string{"show"}, args...)...)
		if code != 0 {
			t.Fatalf("show %v from an empty mirror: exit %d\n%s", args, code, errOut)
		}
		if out != full[i] {
			t.Errorf("show %v from an empty mirror:\n%s\nwith the full mirror:\n%s", args, out, full[i])
		}
		checkMirrorTypes(t, mirror, artifact.MetricsType)
	}

	if err := os.RemoveAll(mirror); err != nil {
		t.Fatal(err)
	}
	c := &UICmd{Pipelines: []string{file}, CacheDir: loc, Addr: "127.0.0.1:0"}
	log := slog.New(slog.DiscardHandler)
	srv, err := c.server(log, stages.Registry())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Root.Close()
	rows, err := results.FromCache(srv.Root, log)
	if err != nil || len(rows) != 1 {
		t.Errorf("ui from an empty mirror: %d rows, %v; want the eval", len(rows), err)
	}
	samples, err := results.AllSamples(srv.Root, log)
	if err != nil || len(samples) != 1 {
		t.Errorf("ui from an empty mirror: %d samples, %v; want one", len(samples), err)
	}
	checkMirrorTypes(t, mirror, artifact.MetricsType, artifact.SamplesType)
	checkBucketCurves(t, srv, loc, log)
	checkUIRefresh(t, c, mirror, log)
}

// checkUIRefresh: the running ui copies again, every uiRefresh, what the
// bucket holds: a mirror emptied under it gets its results and curves back
// without a restart, and refresh stops when its context ends.
func checkUIRefresh(t *testing.T, c *UICmd, mirror string, log *slog.Logger) {
	t.Helper()
	if err := os.RemoveAll(mirror); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { uiRefresh = d }(uiRefresh)
	uiRefresh = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.refresh(ctx, log) }()
	defer func() { cancel(); <-done }()
	curves := filepath.Join(mirror, "s3", "*", "*", "*", pipeline.CurvesDir, "*", "metrics.jsonl")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		got, _ := filepath.Glob(curves)
		if len(got) == 1 && mirrorHolds(mirror, artifact.MetricsType) {
			return
		}
	}
	t.Errorf("the ui's refresh did not copy the results and the curve back into %s", mirror)
}

// mirrorArtifacts lists the artifacts in a bucket cache's local mirror, the
// curves' directory left out: each directory holding an artifact.json.
func mirrorArtifacts(mirror string) []string {
	var dirs []string
	filepath.WalkDir(mirror, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && d.Name() == pipeline.CurvesDir:
			return filepath.SkipDir
		case d.Name() == "artifact.json":
			dirs = append(dirs, filepath.Dir(p))
		}
		return nil
	})
	return dirs
}

// mirrorHolds reports whether an artifact of type ty is in the mirror.
func mirrorHolds(mirror, ty string) bool {
	for _, d := range mirrorArtifacts(mirror) {
		if _, err := artifact.Read(d, ty); err == nil {
			return true
		}
	}
	return false
}

// checkBucketCurves: the ui of a bucket cache shows the training curve of a
// checkpoint that is not in the mirror (its weights never copied), the same
// curve as the checkpoint's own metrics.jsonl; a curve whose object in the
// bucket was overwritten is not shown, and nothing of it is kept.
func checkBucketCurves(t *testing.T, srv *webui.Server, loc string, log *slog.Logger) {
	t.Helper()
	if srv.Curves == nil {
		t.Fatal("ui on a bucket cache: no curves")
	}
	defer srv.Curves.Close()
	runs, err := results.Runs(srv.Curves, time.Now(), log)
	if err != nil || len(runs) != 1 || runs[0].State != "done" || len(runs[0].Points) == 0 {
		t.Fatalf("ui from an empty mirror: curves %+v, %v; want the trained model's", runs, err)
	}
	weights, _ := filepath.Glob(filepath.Join(srv.Curves.Dir, "*", "*.safetensors"))
	if len(weights) != 0 {
		t.Errorf("curves copied weights: %v", weights)
	}
	// Overwrite the curve's object in the bucket (same size, other bytes).
	// (the server's POSIX backend keeps an object as data/<bucket>/<key>).
	u, err := objstore.ParseURL(loc)
	if err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(os.Getenv("MDLM_TEST_S3_DATA"), u.Bucket, filepath.FromSlash(u.Prefix), runs[0].ID, "metrics.jsonl")
	raw, err := os.ReadFile(obj)
	if err != nil {
		t.Fatalf("the curve's object in the server's store: %v", err)
	}
	if err := os.WriteFile(obj, bytes.Repeat([]byte("x"), len(raw)), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(obj, raw, 0o644)
	if err := os.RemoveAll(srv.Curves.Dir); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := pipeline.MirrorCurves(context.Background(), loc, nil, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if got, _ := filepath.Glob(filepath.Join(srv.Curves.Dir, "*", "metrics.jsonl")); len(got) != 0 || !strings.Contains(logs.String(), "damaged") {
		t.Errorf("an overwritten curve: copied %v; log %s", got, logs.String())
	}
}

// checkMirrorTypes fails unless every artifact in the mirror is of one of
// types.
func checkMirrorTypes(t *testing.T, mirror string, types ...string) {
	t.Helper()
	dirs := mirrorArtifacts(mirror)
	if len(dirs) == 0 {
		t.Errorf("nothing copied into %s", mirror)
	}
	for _, d := range dirs {
		m, err := artifact.Read(d, "")
		if err != nil {
			t.Errorf("mirror: %v", err)
			continue
		}
		if !slices.Contains(types, m.Type) {
			t.Errorf("show/ui copied %s (%s) into the mirror", d, m.Type)
		}
	}
}
