package webui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/results"
)

const secret = "TOPSECRET-do-not-serve"

// outsideValue is the metric the artifacts outside the cache hold. It has a
// fraction, exact in float32 and float64, so no temporary directory's name
// (digits only, such as TestHostileRequests2906666129) can contain it; the
// bare "666" it replaces could.
const outsideValue = "666.25"

// fixture: a cache with one metrics artifact and one running .work run, a
// directory outside it holding a secret and artifacts, symlinks from the
// cache to them.
func fixture(t *testing.T) (*Server, string) {
	t.Helper()
	base := t.TempDir()
	cache, outside := filepath.Join(base, "cache"), filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte(secret), 0o644)
	pub := func(dir, typ, file, body string) {
		_, err := artifact.Publish(dir, artifact.Manifest{Type: typ, Stage: "eval"}, func(tmp string) error {
			return os.WriteFile(filepath.Join(tmp, file), []byte(body), 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pub(filepath.Join(cache, "ppl-0123456789abcdef"), artifact.MetricsType, evaluate.MetricsJSON, `{"ppl": 3.25}`)
	pub(filepath.Join(outside, "evil-0123456789abcdef"), artifact.MetricsType, evaluate.MetricsJSON, `{"ppl": `+outsideValue+`, "secret": "`+secret+`"}`)
	pub(filepath.Join(outside, "evilrun-0123456789abcdef"), "checkpoint/v1", "metrics.jsonl", `{"step": 1, "loss": `+outsideValue+`}`+"\n")
	os.Symlink(filepath.Join(outside, "evil-0123456789abcdef"), filepath.Join(cache, "evil-0123456789abcdef"))
	os.Symlink(filepath.Join(outside, "evilrun-0123456789abcdef"), filepath.Join(cache, "evilrun-0123456789abcdef"))
	os.Symlink(outside, filepath.Join(cache, "out-0123456789abcdef.work"))
	work := filepath.Join(cache, "model-0123456789abcdef.work")
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, "metrics.jsonl"), []byte(`{"step": 1, "loss": 5.5}`+"\n"), 0o644)

	root, err := results.OpenRoot(cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	plan := func(ctx context.Context, p string) (Graph, error) {
		return Graph{Name: "p", Path: p, Stages: []StageNode{
			{Name: "ppl", Kind: "eval", State: "cached", Out: filepath.Join(cache, "ppl-0123456789abcdef"), Inputs: map[string]string{"model": "model"}},
			{Name: "model", Kind: "train", State: "run", Out: filepath.Join(cache, "model-0123456789abcdef")},
			{Name: "evil", Kind: "eval", State: "cached", Out: filepath.Join(outside, "evil-0123456789abcdef")},
			{Name: "dotdot", Kind: "eval", State: "cached", Out: filepath.Join(cache, "..", "outside", "evil-0123456789abcdef")},
		}}, nil
	}
	s := &Server{Root: root, Pipelines: []string{filepath.Join(base, "p.yaml")}, Plan: plan, Log: slog.New(slog.DiscardHandler),
		Hosts: []string{"127.0.0.1", "localhost", "::1"}}
	return s, outside
}

func get(h http.Handler, target string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	req.Host = "127.0.0.1:8321"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// The page and its assets are served from the binary, with a policy that
// allows only its own scripts.
func TestPage(t *testing.T) {
	s, _ := fixture(t)
	h := s.Handler()
	for _, p := range []string{"/", "/assets/app.js", "/assets/style.css"} {
		w := get(h, p)
		if w.Code != 200 || w.Body.Len() == 0 || !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s: %d, %d bytes, CSP %q", p, w.Code, w.Body.Len(), w.Header().Get("Content-Security-Policy"))
		}
	}
	if body := get(h, "/").Body.String(); !strings.Contains(body, `src="/assets/app.js"`) || strings.Contains(body, "http") {
		t.Errorf("index refers to something off this server:\n%s", body)
	}
	js := get(h, "/assets/app.js").Body.String()
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "http://") && !strings.Contains(js, `"http://www.w3.org/2000/svg"`) {
		t.Error("app.js uses innerHTML or a remote URL")
	}
}

// The graph: states from the planner, a .work run shown as running, the
// artifact of a cached stage; outputs outside the cache are not described.
func TestGraph(t *testing.T) {
	s, _ := fixture(t)
	var graphs []Graph
	if err := json.Unmarshal(get(s.Handler(), "/api/graph").Body.Bytes(), &graphs); err != nil || len(graphs) != 1 {
		t.Fatalf("%v %+v", err, graphs)
	}
	st := map[string]StageNode{}
	for _, n := range graphs[0].Stages {
		st[n.Name] = n
	}
	if a := st["ppl"].Artifact; a == nil || a.Type != artifact.MetricsType || a.Size == 0 || a.Files != 1 || !strings.HasPrefix(a.Digest, "sha256:") {
		t.Errorf("ppl artifact %+v", a)
	}
	if st["model"].State != "running" {
		t.Errorf("model state %q, want running (its .work metrics.jsonl is fresh)", st["model"].State)
	}
	if st["evil"].Artifact != nil || st["dotdot"].Artifact != nil {
		t.Errorf("an output outside the cache was described: %+v %+v", st["evil"].Artifact, st["dotdot"].Artifact)
	}
}

// Issue 24: no path from a request reaches outside the cache and pipeline
// directories: "..", encoded "%2e%2e", absolute paths, symlinks in the cache.
func TestHostileRequests(t *testing.T) {
	s, outside := fixture(t)
	h := s.Handler()
	targets := []string{
		"/assets/../outside/secret.txt", "/assets/%2e%2e/%2e%2e/outside/secret.txt", "/assets/..%2f..%2foutside%2fsecret.txt",
		"/assets/" + outside + "/secret.txt", "/assets//" + outside + "/secret.txt", "/" + outside + "/secret.txt",
		"/%2e%2e/outside/secret.txt", "/api/runs/../../outside/secret.txt", "/api/runs?id=../outside", "/api/results?dir=" + outside,
		"/api/runs", "/api/results", "/api/samples", "/api/graph", "/assets/%2fetc%2fpasswd", "/assets/..\\..\\outside\\secret.txt",
	}
	for _, target := range targets {
		w := get(h, target)
		body := w.Body.String()
		if strings.Contains(body, secret) || strings.Contains(body, outsideValue) || strings.Contains(body, "root:x:0:0") {
			t.Errorf("GET %s (%d) served something from outside the cache:\n%s", target, w.Code, body)
		}
		if !strings.HasPrefix(target, "/api/") && w.Code == 200 {
			t.Errorf("GET %s: 200", target)
		}
	}
	var runs []results.Run
	json.Unmarshal(get(h, "/api/runs").Body.Bytes(), &runs)
	if len(runs) != 1 || runs[0].Stage != "model" || runs[0].State != "running" {
		t.Errorf("runs %+v, want only the .work run inside the cache", runs)
	}
}

// Issue 24: read-only, and only for this machine's names (DNS rebinding).
func TestHostileMethodsAndHosts(t *testing.T) {
	s, _ := fixture(t)
	h := s.Handler()
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		req := httptest.NewRequest(m, "/api/results", strings.NewReader("{}"))
		req.Host = "127.0.0.1:8321"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, w.Code)
		}
	}
	for host, want := range map[string]int{"127.0.0.1:8321": 200, "localhost:8321": 200, "[::1]:8321": 200, "evil.example:8321": 403, "evil.example": 403} {
		req := httptest.NewRequest("GET", "/api/results", nil)
		req.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %s: %d, want %d", host, w.Code, want)
		}
	}
}

// The results endpoint serves metrics.json's numbers as written.
func TestResultsEndpoint(t *testing.T) {
	s, _ := fixture(t)
	s.Pipelines = nil // the whole cache
	resp := get(s.Handler(), "/api/results")
	raw, _ := io.ReadAll(resp.Body)
	var v ResultsView
	if err := json.Unmarshal(raw, &v); err != nil || len(v.Rows) != 1 || v.Rows[0].Metrics["ppl"] != "3.25" {
		t.Errorf("%v %s", err, raw)
	}
}

// Curves update while a run trains: a line appended to the .work run's
// metrics.jsonl is served on the next poll, with its numbers as written.
func TestRunsUpdateWhileTraining(t *testing.T) {
	s, _ := fixture(t)
	h := s.Handler()
	points := func() []map[string]json.Number {
		var runs []results.Run
		json.Unmarshal(get(h, "/api/runs").Body.Bytes(), &runs)
		if len(runs) != 1 {
			t.Fatalf("runs %+v", runs)
		}
		return runs[0].Points
	}
	if n := len(points()); n != 1 {
		t.Fatalf("%d points before", n)
	}
	f, err := os.OpenFile(filepath.Join(s.Root.Dir, "model-0123456789abcdef.work", "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"step": 2, "loss": 5.125, "tokens_per_sec": 1.5e4}` + "\n")
	f.Close()
	pts := points()
	if len(pts) != 2 || pts[1]["loss"] != "5.125" || pts[1]["tokens_per_sec"] != "1.5e4" {
		t.Errorf("points after %v", pts)
	}
}

// Plans are reused for GraphTTL (planning digests the pipeline's files), the
// run states are fresh on every request.
func TestGraphPlanReused(t *testing.T) {
	s, _ := fixture(t)
	now := time.Now()
	s.Now = func() time.Time { return now }
	calls := 0
	plan := s.Plan
	s.Plan = func(ctx context.Context, p string) (Graph, error) { calls++; return plan(ctx, p) }
	h := s.Handler()
	get(h, "/api/graph")
	get(h, "/api/graph")
	if calls != 1 {
		t.Errorf("%d plans within GraphTTL, want 1", calls)
	}
	now = now.Add(GraphTTL + results.RunningWithin)
	var graphs []Graph
	json.Unmarshal(get(h, "/api/graph").Body.Bytes(), &graphs)
	if calls != 2 {
		t.Errorf("%d plans after GraphTTL, want 2", calls)
	}
	for _, st := range graphs[0].Stages {
		if st.Name == "model" && st.State != "stopped" {
			t.Errorf("model %q, want stopped once its .work run is quiet for %s", st.State, results.RunningWithin)
		}
	}
}

// Issue 24: the run state beside the pipeline (pipeline/runstate.go) marks a
// stage of the current key failed with its error, running while its process
// lives, stopped once it is gone; a record of another key is ignored.
func TestGraphRunState(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	cases := []struct {
		name   string
		rec    pipeline.StageState
		key    string
		state  string
		errSub string
	}{
		{"failed", pipeline.StageState{State: pipeline.StateFailed, Key: "k1", Error: "eval: --split nosuch: no such split"}, "k1", "failed", "no such split"},
		{"running", pipeline.StageState{State: pipeline.StateRunning, Key: "k1", PID: os.Getpid()}, "k1", "running", ""},
		{"gone", pipeline.StageState{State: pipeline.StateRunning, Key: "k1", PID: dead.Process.Pid}, "k1", "stopped", "is gone"},
		{"other key", pipeline.StageState{State: pipeline.StateFailed, Key: "k0", Error: "old"}, "k1", "run", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := fixture(t)
			c.rec.Time = time.Now()
			host, _ := os.Hostname()
			c.rec.Host = host
			raw, _ := json.Marshal(pipeline.RunState{"ppl2": c.rec})
			os.WriteFile(pipeline.RunStatePath(s.Pipelines[0]), raw, 0o644)
			plan := s.Plan
			s.Plan = func(ctx context.Context, p string) (Graph, error) {
				g, err := plan(ctx, p)
				g.Stages = append(g.Stages, StageNode{Name: "ppl2", Kind: "eval", State: "run", Key: c.key, Out: filepath.Join(s.Root.Dir, "ppl2-0123456789abcdef")})
				return g, err
			}
			var graphs []Graph
			json.Unmarshal(get(s.Handler(), "/api/graph").Body.Bytes(), &graphs)
			for _, st := range graphs[0].Stages {
				if st.Name != "ppl2" {
					continue
				}
				if st.State != c.state || !strings.Contains(st.Error, c.errSub) || (c.errSub == "") != (st.Error == "") {
					t.Errorf("ppl2: state %q error %q, want %q with %q", st.State, st.Error, c.state, c.errSub)
				}
				return
			}
			t.Error("ppl2 missing from the graph")
		})
	}
}
