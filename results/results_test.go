package results

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/train"
)

var quiet = slog.New(slog.DiscardHandler)

// publish makes an artifact of type typ at dir holding files (name -> bytes).
func publish(t *testing.T, dir, typ string, params map[string]any, files map[string]string) artifact.Manifest {
	t.Helper()
	m, err := artifact.Publish(dir, artifact.Manifest{Type: typ, Stage: "eval", Params: params}, func(tmp string) error {
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func metricsArtifact(t *testing.T, dir string, params map[string]any, body string) artifact.Manifest {
	return publish(t, dir, artifact.MetricsType, params, map[string]string{evaluate.MetricsJSON: body})
}

func openRoot(t *testing.T, dir string) *Root {
	t.Helper()
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A cache's metrics artifacts become rows named by stage, with their numbers'
// exact text, and only the params that differ are kept for display.
func TestFromCache(t *testing.T) {
	cache := t.TempDir()
	metricsArtifact(t, filepath.Join(cache, "ppl@T=10-0123456789abcdef"), map[string]any{"T": 10, "split": "valid"},
		`{"ppl": 12.500000000000002, "nll": 2.5257, "split": "valid", "nested": {"x": 1e-7}}`)
	metricsArtifact(t, filepath.Join(cache, "ppl@T=1000-fedcba9876543210"), map[string]any{"T": 1000, "split": "valid"},
		`{"ppl": 11.0, "nll": 2.3979}`)
	publish(t, filepath.Join(cache, "model-0000000000000000"), artifact.CheckpointType, nil, map[string]string{"x": "y"})
	os.MkdirAll(filepath.Join(cache, "junk"), 0o755)
	rows, err := FromCache(openRoot(t, cache), quiet)
	if err != nil {
		t.Fatal(err)
	}
	tab := NewTable(rows)
	if len(tab.Rows) != 2 || tab.Rows[0].Stage != "ppl@T=10" || tab.Rows[1].Stage != "ppl@T=1000" {
		t.Fatalf("rows %+v", tab.Rows)
	}
	if strings.Join(tab.Varying, ",") != "T" {
		t.Errorf("varying %v, want [T]", tab.Varying)
	}
	if strings.Join(tab.Metrics, ",") != "ppl,nll,nested.x" {
		t.Errorf("metrics %v", tab.Metrics)
	}
	r := tab.Rows[0]
	if r.Metrics["ppl"] != "12.500000000000002" || r.Metrics["nested.x"] != "1e-7" || r.Info["split"] != "valid" {
		t.Errorf("row %+v", r)
	}
	if tab.Rows[1].Metrics["ppl"] != "11.0" {
		t.Errorf("ppl %s, want metrics.json's text 11.0", tab.Rows[1].Metrics["ppl"])
	}
	js := tab.JSONRows()
	if len(js[0].Params) != 1 || js[0].Params["T"] != "10" {
		t.Errorf("JSON params %v, want only T", js[0].Params)
	}
}

// Inherited params: a stage's own flags and, by input name, those of the
// stages it read, found by digest; cycles and shared digests are harmless.
func TestLockParams(t *testing.T) {
	lock := Lock{
		"blocks": {Digest: "d0", Params: map[string]any{"length": "64"}},
		"model":  {Digest: "d1", Params: map[string]any{"seed": "1"}, Inputs: map[string]string{"data": "d0", "tokenizer:/x": "d0"}},
		"ppl":    {Digest: "d2", Params: map[string]any{"split": "valid"}, Inputs: map[string]string{"model": "d1", "data": "d0"}},
		"loop":   {Digest: "d3", Inputs: map[string]string{"self": "d3"}},
	}
	got := lock.Params("ppl")
	want := map[string]string{"split": "valid", "model.seed": "1", "model.data.length": "64", "data.length": "64"}
	if len(got) != len(want) {
		t.Errorf("params %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if p := lock.Params("loop"); len(p) != 0 {
		t.Errorf("loop params %v", p)
	}
}

// Issue 24 hostile inputs: a lock file whose stages form many diamonds must
// not take exponential time (MaxAncestorVisits).
func TestHostileLockDiamonds(t *testing.T) {
	lock := Lock{name(0, "a"): {Digest: "s0a"}, name(0, "b"): {Digest: "s0b"}}
	for i := 1; i < 40; i++ {
		in := map[string]string{"a": lock[name(i-1, "a")].Digest, "b": lock[name(i-1, "b")].Digest}
		for _, s := range []string{"a", "b"} {
			lock[name(i, s)] = pipeline.LockEntry{Digest: name(i, s), Inputs: in, Params: map[string]any{"x": "1"}}
		}
	}
	if p := lock.Params(name(39, "a")); len(p) == 0 {
		t.Error("no params")
	}
}

func name(i int, s string) string { raw, _ := json.Marshal(i); return "s" + string(raw) + s }

// Hostile caches and lock files: nothing outside the cache is read, a
// changed or oversize metrics.json is refused, a lock naming another digest
// is not believed.
func TestHostileResults(t *testing.T) {
	outside := t.TempDir()
	metricsArtifact(t, filepath.Join(outside, "ppl-0123456789abcdef"), nil, `{"ppl": 1}`)
	cache := t.TempDir()
	good := filepath.Join(cache, "good-0123456789abcdef")
	gm := metricsArtifact(t, good, nil, `{"ppl": 2}`)

	// A symlinked entry pointing outside the cache is not listed.
	os.Symlink(filepath.Join(outside, "ppl-0123456789abcdef"), filepath.Join(cache, "link-0123456789abcdef"))
	// An artifact whose metrics.json is a symlink outside is refused.
	esc := filepath.Join(cache, "esc-0123456789abcdef")
	em := metricsArtifact(t, esc, nil, `{"ppl": 1}`)
	os.Remove(filepath.Join(esc, evaluate.MetricsJSON))
	os.Symlink(filepath.Join(outside, "ppl-0123456789abcdef", evaluate.MetricsJSON), filepath.Join(esc, evaluate.MetricsJSON))
	// A metrics.json changed after publication is refused.
	tam := filepath.Join(cache, "tampered-0123456789abcdef")
	metricsArtifact(t, tam, nil, `{"ppl": 3}`)
	os.WriteFile(filepath.Join(tam, evaluate.MetricsJSON), []byte(`{"ppl": 4}`), 0o644)
	// An oversize metrics.json is refused before it is read.
	big := filepath.Join(cache, "big-0123456789abcdef")
	metricsArtifact(t, big, nil, `{"ppl": 5, "pad": "`+strings.Repeat("x", MaxMetricsBytes)+`"}`)

	root := openRoot(t, cache)
	rows, err := FromCache(root, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Stage != "good" || rows[0].Metrics["ppl"] != "2" {
		t.Errorf("rows %+v, want only good", rows)
	}

	lock := Lock{
		"good":     {Kind: "eval", Out: good, Digest: gm.Digest()},
		"abs":      {Kind: "eval", Out: filepath.Join(outside, "ppl-0123456789abcdef")},
		"dotdot":   {Kind: "eval", Out: filepath.Join(cache, "..", filepath.Base(outside), "ppl-0123456789abcdef")},
		"relative": {Kind: "eval", Out: "../" + filepath.Base(outside) + "/ppl-0123456789abcdef"},
		"esc":      {Kind: "eval", Out: esc, Digest: em.Digest()},
		"stale":    {Kind: "eval", Out: good, Digest: "sha256:other"},
	}
	rows = FromLock(root, "p", lock, quiet)
	if len(rows) != 1 || rows[0].Stage != "good" {
		t.Errorf("lock rows %+v, want only good", rows)
	}
}

// Issue 24 hostile inputs: an oversize or malformed lock file is refused
// with its name.
func TestHostileLockFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	for _, c := range []struct {
		body, mention string
	}{
		{`{"a": {"out": 1}}`, "p.yaml.lock.json"},
		{`[]`, "p.yaml.lock.json"},
		{`{"": {}}`, "empty"},
		{`{"a": {}}` + strings.Repeat(" ", MaxLockBytes), "more than"},
	} {
		os.WriteFile(LockFile(p), []byte(c.body), 0o644)
		if _, err := ReadLock(p); err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("lock %.20q: error %v, want one mentioning %q", c.body, err, c.mention)
		}
	}
	os.Remove(LockFile(p))
	if _, err := ReadLock(p); err == nil || !strings.Contains(err.Error(), "run it first") {
		t.Errorf("missing lock: %v", err)
	}
}

// Runs: a checkpoint's metrics.jsonl (checked against its manifest) and a
// .work run's, running when it changed recently, stopped otherwise.
func TestRuns(t *testing.T) {
	cache := t.TempDir()
	curve := "{\"step\":1,\"loss\":5.25,\"lr\":0.0003}\n{\"step\":2,\"val_ppl\":100.125}\n"
	publish(t, filepath.Join(cache, "model-0123456789abcdef"), artifact.CheckpointType, nil, map[string]string{train.MetricsFile: curve})
	work := filepath.Join(cache, "model2-0123456789abcdef.work")
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, train.MetricsFile), []byte("{\"step\":1,\"loss\":6,\"tokens_per_sec\":1234.5}\n"), 0o644)
	stale := filepath.Join(cache, "model3-0123456789abcdef.work")
	os.MkdirAll(stale, 0o755)
	os.WriteFile(filepath.Join(stale, train.MetricsFile), []byte("{\"step\":1,\"loss\":7}\n"), 0o644)
	old := time.Now().Add(-10 * time.Minute)
	os.Chtimes(filepath.Join(stale, train.MetricsFile), old, old)
	runs, err := Runs(openRoot(t, cache), time.Now(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("runs %+v", runs)
	}
	if r := runs[0]; r.Stage != "model" || r.State != "done" || len(r.Points) != 2 || r.Points[0]["loss"] != "5.25" || r.Points[1]["val_ppl"] != "100.125" {
		t.Errorf("done run %+v", r)
	}
	if r := runs[1]; r.Stage != "model2" || r.State != "running" || r.Points[0]["tokens_per_sec"] != "1234.5" {
		t.Errorf("running run %+v", r)
	}
	if r := runs[2]; r.State != "stopped" {
		t.Errorf("stale run %+v", r)
	}
}

// Issue 24 hostile inputs: a curve line longer than MaxCurveLine is an error,
// not an allocation of any size.
func TestHostileCurve(t *testing.T) {
	if _, err := ParseCurve([]byte(`{"step":1,"x":"` + strings.Repeat("a", MaxCurveLine) + `"}`)); err == nil {
		t.Error("oversize line accepted")
	}
	if _, err := ParseCurve([]byte("{\"step\":1}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
}

// Issue 24 hostile inputs: a cache entry's name or a metrics.json string
// cannot put control characters (terminal escapes) into the text table.
func TestHostileTableText(t *testing.T) {
	tab := NewTable([]Row{{Stage: "a\x1b[2Jb", Params: map[string]string{"x": "1\n2"}, Metrics: map[string]json.Number{"ppl": "3"}},
		{Stage: "c", Params: map[string]string{"x": "2"}}})
	var out strings.Builder
	tab.WriteText(&out)
	if strings.ContainsAny(out.String(), "\x1b\r") || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("text table %q", out.String())
	}
}

// Samples: rows of samples.jsonl with the checkpoint found by digest.
func TestSamples(t *testing.T) {
	cache := t.TempDir()
	ck := publish(t, filepath.Join(cache, "model-0123456789abcdef"), artifact.CheckpointType, nil, map[string]string{"w": "x"})
	dir := filepath.Join(cache, "samples-0123456789abcdef")
	_, err := artifact.Publish(dir, artifact.Manifest{Type: "samples/v1", Params: map[string]any{"steps": 8}, Inputs: map[string]string{"model": ck.Digest()}},
		func(tmp string) error {
			return os.WriteFile(filepath.Join(tmp, "samples.jsonl"), []byte("{\"index\":0,\"tokens\":[1],\"nfe\":7,\"text\":\"<b>hi</b>\"}\n"), 0o644)
		})
	if err != nil {
		t.Fatal(err)
	}
	found, err := AllSamples(openRoot(t, cache), quiet)
	if err != nil || len(found) != 1 {
		t.Fatalf("%v %+v", err, found)
	}
	s := found[0]
	if s.Model != "model-0123456789abcdef" || s.Params["steps"] != "8" || len(s.Rows) != 1 || s.Rows[0].NFE != 7 || s.Rows[0].Text != "<b>hi</b>" {
		t.Errorf("samples %+v", s)
	}
}
