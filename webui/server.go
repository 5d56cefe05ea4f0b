// Package webui is `mdlm ui`: a local, read-only web page over a cache
// directory and some pipelines: the pipeline graph with each stage's state
// and artifact, training curves (updating while a run trains), the results
// table of `mdlm show`, and a samples browser. The page is hand-written
// HTML, JS and SVG embedded in the binary (assets/); it needs no network.
//
// Requests name no file: the JSON endpoints read what package results finds
// in the cache (every read confined to it by os.Root) and the pipelines given
// on the command line; static files come from the embedded assets only.
package webui

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/results"
)

//go:embed assets
var assets embed.FS

// StageNode is one stage of a pipeline graph as the page draws it.
type StageNode struct {
	Name     string            `json:"name"`
	Kind     string            `json:"kind"`
	Inputs   map[string]string `json:"inputs"` // input name -> producing stage
	State    string            `json:"state"`  // cached, run (would run), running, stopped, failed
	Reasons  []string          `json:"reasons,omitempty"`
	Error    string            `json:"error,omitempty"` // failed: the stage's error; stopped: why
	Since    *time.Time        `json:"since,omitempty"` // when it started running or failed
	Key      string            `json:"-"`               // the cache key (run state records name it)
	Out      string            `json:"-"`               // the output directory (absolute)
	Artifact *Artifact         `json:"artifact,omitempty"`
}

// Artifact is what the page shows of a stage's output.
type Artifact struct {
	Type   string            `json:"type"`
	Size   int64             `json:"size"`
	Files  int               `json:"files"`
	Digest string            `json:"digest"`
	Params map[string]string `json:"params,omitempty"`
	Dir    string            `json:"dir"` // relative to the cache
}

// Graph is one pipeline's stages in order.
type Graph struct {
	Name   string      `json:"name"`
	Path   string      `json:"path"`
	Error  string      `json:"error,omitempty"`
	Stages []StageNode `json:"stages"`
}

// Planner decides a pipeline's stages without running them (the CLI passes
// pipeline.Load with Engine.Plan).
type Planner func(ctx context.Context, pipelinePath string) (Graph, error)

// Server serves the page and its JSON endpoints.
type Server struct {
	Root *results.Root
	// Curves, when not nil, holds more training curves: those of checkpoints
	// in a bucket cache, copied without their weights
	// (pipeline.MirrorCurves). A run in Root wins over one of the same ID.
	Curves    *results.Root
	Pipelines []string
	Plan      Planner
	Log       *slog.Logger
	Now       func() time.Time
	// Hosts are the Host header names accepted (DNS rebinding: a page on
	// another site that resolves its name to 127.0.0.1 gets nothing); empty:
	// any.
	Hosts []string

	mu    sync.Mutex // one plan at a time; plans reused for GraphTTL
	plans map[string]plan
}

// GraphTTL is how long a pipeline's plan is reused: planning digests the
// files the pipeline names (a corpus), which should not happen on every poll.
const GraphTTL = 10 * time.Second

type plan struct {
	at  time.Time
	g   Graph
	err error
}

// planned returns the pipeline's plan, made at most GraphTTL ago.
func (s *Server) planned(ctx context.Context, p string) (Graph, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.plans[p]; ok && s.now().Sub(c.at) < GraphTTL {
		return c.g, c.err
	}
	g, err := s.Plan(ctx, p)
	if ctx.Err() != nil {
		return g, err // the page went away: nothing worth keeping
	}
	if s.plans == nil {
		s.plans = map[string]plan{}
	}
	s.plans[p] = plan{at: s.now(), g: g, err: err}
	return g, err
}

// Handler routes the page, its assets and the API.
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(assets, "assets")
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("GET /api/graph", s.graph)
	mux.HandleFunc("GET /api/results", s.results)
	mux.HandleFunc("GET /api/runs", s.runs)
	mux.HandleFunc("GET /api/samples", s.samples)
	return s.guard(mux)
}

// guard checks the Host header and the method and sets headers that keep the
// page to its own scripts.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			http.Error(w, "unknown host", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) hostAllowed(host string) bool {
	if len(s.Hosts) == 0 {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	for _, ok := range s.Hosts {
		if strings.EqualFold(host, ok) {
			return true
		}
	}
	return false
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		s.Log.Debug("writing a response", "err", err)
	}
}

func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	s.Log.Warn("ui: "+what, "err", err)
	http.Error(w, what+": "+err.Error(), http.StatusInternalServerError)
}

// graph plans every pipeline and adds each stage's artifact and run state.
func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	out := []Graph{}
	for _, p := range s.Pipelines {
		g, err := s.planned(r.Context(), p)
		if err != nil {
			g = Graph{Name: path.Base(p), Path: p, Error: err.Error(), Stages: []StageNode{}}
		}
		g.Stages = append([]StageNode(nil), g.Stages...) // describe below is fresh on every request
		rs := s.runState(p)
		for i := range g.Stages {
			s.describe(&g.Stages[i], rs)
		}
		out = append(out, g)
	}
	s.writeJSON(w, out)
}

// runState reads the pipeline's run state (pipeline/runstate.go): which
// stages `mdlm run` is running or saw fail. A broken one is logged and ignored.
func (s *Server) runState(p string) pipeline.RunState {
	rs, err := pipeline.ReadRunState(p)
	if err != nil {
		s.Log.Warn("ui: run state", "pipeline", p, "err", err)
	}
	return rs
}

// describe fills a stage's artifact from its output directory, and marks a
// stage that is not cached as failed or running from the run state (for its
// current key), else, when it has a .work run, as running or stopped.
func (s *Server) describe(st *StageNode, rs pipeline.RunState) {
	if st.State != "cached" && applyRunState(st, rs) {
		return
	}
	rel, err := s.Root.Rel(st.Out)
	if err != nil {
		return
	}
	if st.State != "cached" {
		if fi, err := s.Root.Stat(rel + results.WorkSuffix); err == nil && fi.IsDir() {
			st.State = "stopped"
			if mf, err := s.Root.Stat(rel + results.WorkSuffix + "/metrics.jsonl"); err == nil && s.now().Sub(mf.ModTime()) < results.RunningWithin {
				st.State = "running"
			}
		}
		return
	}
	m, err := s.Root.Manifest(rel)
	if err != nil {
		return
	}
	a := &Artifact{Type: m.Type, Files: len(m.Files), Digest: m.Digest(), Dir: rel, Params: map[string]string{}}
	for _, f := range m.Files {
		a.Size += f.Size
	}
	for k, v := range m.Params {
		a.Params[k] = stringify(v)
	}
	st.Artifact = a
}

// applyRunState sets a stage's state from its run state record, if one was
// written for the stage's current key: failed with its error, running while
// the process that runs it lives, stopped once it is gone.
func applyRunState(st *StageNode, rs pipeline.RunState) bool {
	rec, ok := rs[st.Name]
	if !ok || rec.Key != st.Key || st.Key == "" {
		return false
	}
	since := rec.Time
	st.Since = &since
	switch {
	case rec.State == pipeline.StateFailed:
		st.State, st.Error = "failed", rec.Error
	case rec.State == pipeline.StateRunning && rec.Alive():
		st.State = "running"
	case rec.State == pipeline.StateRunning:
		st.State, st.Error = "stopped", fmt.Sprintf("the process that ran it (pid %d on %s) is gone", rec.PID, rec.Host)
	default:
		st.Since = nil
		return false
	}
	return true
}

func stringify(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// ResultsView is /api/results: `mdlm show --json`'s rows and the columns.
type ResultsView struct {
	Varying []string          `json:"varying"`
	Metrics []string          `json:"metrics"`
	Rows    []results.JSONRow `json:"rows"`
}

func (s *Server) results(w http.ResponseWriter, r *http.Request) {
	var rows []results.Row
	if len(s.Pipelines) == 0 {
		var err error
		if rows, err = results.FromCache(s.Root, s.Log); err != nil {
			s.fail(w, "results", err)
			return
		}
	}
	for _, p := range s.Pipelines {
		lock, err := results.ReadLock(p)
		if err != nil {
			s.Log.Debug("ui: no results yet", "pipeline", p, "err", err)
			continue
		}
		rows = append(rows, results.WithoutFailed(results.FromLock(s.Root, strings.TrimSuffix(path.Base(p), path.Ext(p)), lock, s.Log), s.runState(p), s.Log)...)
	}
	t := results.NewTable(rows)
	s.writeJSON(w, ResultsView{Varying: nonNil(t.Varying), Metrics: nonNil(t.Metrics), Rows: t.JSONRows()})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	runs, err := results.Runs(s.Root, s.now(), s.Log)
	if err != nil {
		s.fail(w, "runs", err)
		return
	}
	if s.Curves != nil {
		more, err := results.Runs(s.Curves, s.now(), s.Log)
		if err != nil {
			s.fail(w, "runs", err)
			return
		}
		runs = mergeRuns(runs, more)
	}
	if runs == nil {
		runs = []results.Run{}
	}
	s.writeJSON(w, runs)
}

// mergeRuns adds to runs those of more whose IDs it lacks, in ID order.
func mergeRuns(runs, more []results.Run) []results.Run {
	have := map[string]bool{}
	for _, r := range runs {
		have[r.ID] = true
	}
	for _, r := range more {
		if !have[r.ID] {
			runs = append(runs, r)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	return runs
}

func (s *Server) samples(w http.ResponseWriter, r *http.Request) {
	found, err := results.AllSamples(s.Root, s.Log)
	if err != nil {
		s.fail(w, "samples", err)
		return
	}
	if found == nil {
		found = []results.Samples{}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].ID < found[j].ID })
	s.writeJSON(w, found)
}
