package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/results"
	"github.com/mdlm-go/mdlm/stage"
)

// ShowCmd is `mdlm show`: one table of every metrics/v1 result of some
// pipelines (through their lock files) or of a cache directory.
type ShowCmd struct {
	Pipelines []string `arg:"" optional:"" help:"Pipeline files whose results to show (their <file>.lock.json names the outputs); none: every result in --cache-dir." type:"existingfile"`
	CacheDir  string   `default:".mdlm/cache" help:"The cache directory the outputs live in (as given to mdlm run)." type:"path"`
	JSON      bool     `name:"json" xor:"format" help:"Print a JSON array, one object per result: stage, the params that differ, the metrics by name."`
	CSV       bool     `name:"csv" xor:"format" help:"Print CSV."`
	MD        bool     `name:"md" xor:"format" help:"Print a Markdown table."`
	Diff      string   `placeholder:"REV" help:"Compare with the pipeline's lock file at this git revision (git show REV:<file>.lock.json): name what changed, stage by stage."`
	Rows      string   `placeholder:"AXIS" help:"Pivot on a matrix axis: one line per value of AXIS, one column per pipeline (and per value of other axes), each cell --metric (pipelines/zero-shot.yaml: --rows set gives the paper's Table 3)."`
	Metric    string   `default:"ppl" help:"With --rows: the metric in the cells."`

	reg stage.Registry // bound by the CLI; orders the lines of --rows
}

// Run prints the table (or the diff) on standard output.
func (c *ShowCmd) Run(ctx context.Context, kctx *kong.Context, log *slog.Logger, reg stage.Registry) error {
	c.reg = reg
	return c.run(ctx, kctx.Stdout, log)
}

func (c *ShowCmd) run(ctx context.Context, stdout io.Writer, log *slog.Logger) error {
	dir, err := readableCache(ctx, "show", c.CacheDir, c.Pipelines, []string{artifact.MetricsType}, log)
	if err != nil {
		return err
	}
	root, err := results.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("show: --cache-dir: %w", err)
	}
	defer root.Close()
	if c.Diff != "" {
		return c.diff(ctx, root, stdout, log)
	}
	rows, err := c.rows(root, log)
	if err != nil {
		return fmt.Errorf("show: %w", err)
	}
	if c.Rows != "" {
		return c.writeGrid(stdout, results.NewGrid(rows, c.Rows, c.Metric, c.order(log)))
	}
	t := results.NewTable(rows)
	switch {
	case c.JSON:
		return t.WriteJSON(stdout)
	case c.CSV:
		return t.WriteCSV(stdout)
	case c.MD:
		return t.WriteMarkdown(stdout)
	}
	return t.WriteText(stdout)
}

// rows reads the pipelines' results, or the whole cache without pipelines.
func (c *ShowCmd) rows(root *results.Root, log *slog.Logger) ([]results.Row, error) {
	if len(c.Pipelines) == 0 {
		return results.FromCache(root, log)
	}
	var rows []results.Row
	for _, p := range c.Pipelines {
		lock, err := results.ReadLock(p)
		if err != nil {
			return nil, err
		}
		rs, err := pipeline.ReadRunState(p)
		if err != nil {
			log.Warn("run state unreadable; failed stages may be listed", "err", err)
		}
		rows = append(rows, results.WithoutFailed(results.FromLock(root, pipelineName(p), lock, log), rs, log)...)
	}
	return rows, nil
}

// writeGrid prints the pivoted table in the format asked for.
func (c *ShowCmd) writeGrid(w io.Writer, g results.Grid) error {
	switch {
	case c.JSON:
		return g.WriteJSON(w)
	case c.CSV:
		return g.WriteCSV(w)
	case c.MD:
		return g.WriteMarkdown(w)
	}
	return g.WriteText(w)
}

// order is the expansions of the pipelines' matrix stages in the order their
// axes list the values, for the lines of --rows; a file that no longer loads
// adds nothing (its lines are then sorted).
func (c *ShowCmd) order(log *slog.Logger) []string {
	var order []string
	for _, p := range c.Pipelines {
		if c.reg == nil {
			break
		}
		f, err := pipeline.Load(p, nil, c.reg)
		if err != nil {
			log.Debug("show --rows: lines sorted by name", "pipeline", p, "err", err)
			continue
		}
		for _, base := range slices.Sorted(maps.Keys(f.Matrices)) {
			order = append(order, f.Matrices[base]...)
		}
	}
	return order
}

func pipelineName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
}

// diff compares the pipeline's lock file with its version at c.Diff.
func (c *ShowCmd) diff(ctx context.Context, root *results.Root, stdout io.Writer, log *slog.Logger) error {
	if len(c.Pipelines) != 1 {
		return fmt.Errorf("show --diff: name exactly one pipeline file")
	}
	p := c.Pipelines[0]
	cur, err := results.ReadLock(p)
	if err != nil {
		return fmt.Errorf("show --diff: %w", err)
	}
	raw, err := gitShow(ctx, c.Diff, results.LockFile(p))
	if err != nil {
		return fmt.Errorf("show --diff %s: %w", c.Diff, err)
	}
	old, err := results.ParseLock(c.Diff+":"+results.LockFile(p), raw)
	if err != nil {
		return fmt.Errorf("show --diff: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler) // an old output no longer cached is expected
	changes := results.Diff(old, cur, results.FromLock(root, "", old, quiet), results.FromLock(root, "", cur, log))
	return results.WriteDiff(stdout, c.Diff, changes)
}

// MaxRevLength bounds a --diff revision.
const MaxRevLength = 256

// gitShow returns file (a path on disk, inside a git work tree) as it was at rev.
func gitShow(ctx context.Context, rev, file string) ([]byte, error) {
	if rev == "" || len(rev) > MaxRevLength || strings.HasPrefix(rev, "-") || strings.ContainsAny(rev, ": \t\n\x00") {
		return nil, fmt.Errorf("--diff %q: not a git revision", rev)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(abs)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "show", rev+":./"+filepath.Base(abs))
	cmd.Stdout, cmd.Stderr = &limitedWriter{w: &out, n: results.MaxLockBytes + 1}, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git show %s:%s: %v: %s", rev, file, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// limitedWriter keeps at most n bytes (ParseLock then refuses the oversize).
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	k := min(int64(len(p)), l.n)
	l.n -= k
	if _, err := l.w.Write(p[:k]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readableCache is the local directory show and ui read for --cache-dir loc:
// loc itself, or for a cache in a bucket (s3://..., issue 25) its local
// mirror (pipeline.LocalMirror, where `mdlm run` computes), into which the
// outputs of the given types are first copied from the bucket, verified
// (pipeline.MirrorOutputs): those the pipelines' lock files name, or with no
// pipelines every output in the bucket. Checkpoints and packed data are never
// downloaded for this.
func readableCache(ctx context.Context, cmd, loc string, pipelines []string, types []string, log *slog.Logger) (string, error) {
	if !objstore.IsURL(loc) {
		return loc, nil
	}
	mirror, err := pipeline.LocalMirror(loc)
	if err != nil {
		return "", fmt.Errorf("%s: --cache-dir %s: %w", cmd, loc, err)
	}
	names, err := lockedOutputs(mirror, pipelines)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if _, err := pipeline.MirrorOutputs(ctx, loc, names, types, log); err != nil {
		return "", fmt.Errorf("%s: --cache-dir %s: %w", cmd, loc, err)
	}
	return mirror, nil
}

// lockedOutputs lists the output names (directories directly under mirror)
// the pipelines' lock files record; nil without pipelines. A pipeline without
// a lock file adds none.
func lockedOutputs(mirror string, pipelines []string) ([]string, error) {
	if len(pipelines) == 0 {
		return nil, nil
	}
	names := []string{}
	for _, p := range pipelines {
		lock, err := results.ReadLock(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range lock {
			rel, err := filepath.Rel(mirror, e.Out)
			if err == nil && filepath.IsLocal(rel) && filepath.Base(rel) == rel {
				names = append(names, rel)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
