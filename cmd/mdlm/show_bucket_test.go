package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/results"
	"github.com/mdlm-go/mdlm/stages"
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
}

// checkMirrorTypes fails unless every artifact in the mirror is of one of
// types.
func checkMirrorTypes(t *testing.T, mirror string, types ...string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(mirror, "s3", "*", "*", "*", "*", "*-*"))
	if len(dirs) == 0 {
		t.Errorf("nothing copied into %s", mirror)
	}
	for _, d := range dirs {
		m, err := artifact.Read(d, "")
		if err != nil {
			continue // an engine lock file
		}
		ok := false
		for _, ty := range types {
			ok = ok || m.Type == ty
		}
		if !ok {
			t.Errorf("show/ui copied %s (%s) into the mirror", d, m.Type)
		}
	}
}
