package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/results"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/webui"
)

// UICmd is `mdlm ui`: a local, read-only web page over the pipelines and the
// cache (package webui), served until interrupted.
type UICmd struct {
	Pipelines []string          `arg:"" optional:"" help:"Pipeline files to show (graph, results); the curves and samples come from every run in --cache-dir." type:"existingfile"`
	CacheDir  string            `default:".mdlm/cache" help:"The cache directory the outputs live in (as given to mdlm run)." type:"path"`
	Addr      string            `default:"127.0.0.1:8321" help:"Address to listen on (host:port); keep it on 127.0.0.1 unless the network is trusted."`
	Set       map[string]string `help:"Override pipeline vars as given to mdlm run (--set steps=100), so the graph plans the same stages." mapsep:","`
}

// Run serves the page until ctx ends (Ctrl-C).
func (c *UICmd) Run(ctx context.Context, kctx *kong.Context, log *slog.Logger, reg stage.Registry) error {
	srv, err := c.serverCtx(ctx, log, reg)
	if err != nil {
		return err
	}
	defer srv.Root.Close()
	if srv.Curves != nil {
		defer srv.Curves.Close()
		go c.refresh(ctx, log)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("ui: --addr %s: %w", c.Addr, err)
	}
	fmt.Fprintf(kctx.Stdout, "mdlm ui: http://%s/\n", ln.Addr())
	return serve(ctx, ln, srv.Handler(), log)
}

// uiTypes are the artifact types the page shows that a cache in a bucket
// copies into its local mirror (readableCache): the results and the samples.
var uiTypes = []string{artifact.MetricsType, artifact.SamplesType}

func (c *UICmd) server(log *slog.Logger, reg stage.Registry) (*webui.Server, error) {
	return c.serverCtx(context.Background(), log, reg)
}

// serverCtx builds the page's server; ctx bounds the copies from a cache in
// a bucket.
func (c *UICmd) serverCtx(ctx context.Context, log *slog.Logger, reg stage.Registry) (*webui.Server, error) {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("ui: --addr %q: %w", c.Addr, err)
	}
	dir, err := readableCache(ctx, "ui", c.CacheDir, nil, uiTypes, log)
	if err != nil {
		return nil, err
	}
	root, err := results.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("ui: --cache-dir: %w", err)
	}
	srv := &webui.Server{Root: root, Pipelines: c.Pipelines, Log: log, Hosts: allowedHosts(host),
		Plan: planner(root.Dir, c.Set, reg)}
	if objstore.IsURL(c.CacheDir) {
		srv.Plan = planner(c.CacheDir, c.Set, reg) // the graph judges stages against the bucket, as mdlm run does
		curves, err := pipeline.MirrorCurves(ctx, c.CacheDir, nil, log)
		if err == nil {
			srv.Curves, err = results.OpenRoot(curves)
		}
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("ui: --cache-dir %s: %w", c.CacheDir, err)
		}
	}
	return srv, nil
}

// uiRefresh is how often `mdlm ui` on a cache in a bucket copies again what
// it shows (new results, samples and training curves published meanwhile).
var uiRefresh = time.Minute

// refresh copies the bucket cache's results, samples and curves into the
// mirror every uiRefresh until ctx ends; the page reads them from there.
func (c *UICmd) refresh(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(uiRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := readableCache(ctx, "ui", c.CacheDir, nil, uiTypes, log); err != nil && ctx.Err() == nil {
			log.Warn("ui: refreshing from the bucket", "err", err)
		}
		if _, err := pipeline.MirrorCurves(ctx, c.CacheDir, nil, log); err != nil && ctx.Err() == nil {
			log.Warn("ui: refreshing curves from the bucket", "err", err)
		}
	}
}

// allowedHosts are the Host names the page answers: the loopback names for a
// loopback address, the given host otherwise; any for a wildcard address.
func allowedHosts(host string) []string {
	ip := net.ParseIP(host)
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		return nil
	case host == "localhost" || ip != nil && ip.IsLoopback():
		return []string{"127.0.0.1", "localhost", "::1", host}
	}
	return []string{host}
}

// planner loads a pipeline and plans it (nothing runs) for the graph view.
func planner(cacheDir string, vars map[string]string, reg stage.Registry) webui.Planner {
	return func(ctx context.Context, path string) (webui.Graph, error) {
		f, err := pipeline.Load(path, vars, reg)
		if err != nil {
			return webui.Graph{}, err
		}
		e := &pipeline.Engine{CacheDir: cacheDir}
		decisions, err := e.Plan(ctx, f)
		if err != nil {
			return webui.Graph{}, err
		}
		g := webui.Graph{Name: f.Name, Path: path}
		for _, d := range decisions {
			st := f.Stages[d.Stage]
			if st == nil {
				continue
			}
			state := "run"
			if d.Cached {
				state = "cached"
			}
			g.Stages = append(g.Stages, webui.StageNode{Name: d.Stage, Kind: st.Run, Inputs: st.Inputs, State: state, Reasons: d.Reasons, Key: d.Key, Out: d.Out})
		}
		return g, nil
	}
}

// serve answers on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("ui: %w", err)
	case <-ctx.Done():
	}
	log.Info("ui: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ui: shutdown: %w", err)
	}
	return nil
}
