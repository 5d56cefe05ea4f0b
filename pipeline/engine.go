package pipeline

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Engine plans and runs pipelines. It works stage by stage, in the file's
// topological order, in two steps kept apart:
//
//   - deciding (decide.go): the stage's resolved parameters, cache key,
//     input digests and output directory, and whether that output is already
//     settled (verified here, agreeing with the lock file, or verified in the
//     shared cache), with the reasons as data. Deciding only reads.
//   - executing (execute.go): what a decision asks for: copy from the shared
//     cache, or run the stage's command line, then record it in the lock file
//     (lockfile.go) and push it to the shared cache (sharedcache.go).
//
// A stage is decided once the stages it reads are settled, since its key
// covers their outputs' digests. Plan decides every stage; Run decides and
// executes each in turn. The -j pool (pool.go) and Slurm (slurm.go) run each
// stage as `mdlm run FILE --stage NAME`, which is Run with Only set.
//
// Exec runs one stage's command line (the CLI passes its own parser, so a
// stage runs exactly as it would by hand).
type Engine struct {
	CacheDir string
	Exec     func(ctx context.Context, args []string) error
	Log      io.Writer
	// Only runs just this stage (a scheduler's job): the stages it depends on
	// must already have verified outputs, and the others are not looked at.
	Only string
	// ShardIndex and NumShards hand a scheduler's array task to a stage with
	// shards; a shard that is not the last to finish publishes nothing.
	ShardIndex, NumShards int
	// WaitInputs makes a single-stage run (Only) wait up to this long for the
	// stages it needs, when they are being built by other processes started at
	// the same time (Kubernetes Jobs have no dependencies); Poll is the interval.
	WaitInputs, Poll time.Duration
	// Shared is a cache shared between machines (CI, a team), a directory or
	// s3://bucket/prefix: a stage missing here but present and verified there
	// is copied instead of run, and every stage that runs is copied there (see
	// sharedcache.go and bucketcache.go).
	Shared string
}

// Plan decides every stage without running anything (dry run): a stage whose
// inputs are not built yet is planned to run, its inputs' digests unknown.
func (e *Engine) Plan(ctx context.Context, f *File) ([]Decision, error) {
	return e.walk(ctx, f, nil)
}

// Run decides each stage once its inputs are settled and executes the
// decision: cached stages are kept, the others copied from the shared cache
// or run, in order, and every one is recorded in the lock file.
func (e *Engine) Run(ctx context.Context, f *File) ([]Decision, error) {
	x := &executor{Engine: e, f: f, cached: map[string]LockEntry{}}
	ds, err := e.walk(ctx, f, x.execute)
	if err != nil {
		return ds, err
	}
	return ds, x.recordCached()
}

// walk decides the stages in order and hands each decision to exec (nil: a
// plan, which only logs it). A stage's output digest goes from its step into
// settled, where the stages that read it find it.
func (e *Engine) walk(ctx context.Context, f *File, exec func(context.Context, *step) error) ([]Decision, error) {
	lock, err := readLockFile(f)
	if err != nil {
		return nil, err
	}
	names, err := e.stagesToVisit(f)
	if err != nil {
		return nil, err
	}
	settled := map[string]output{}
	var decisions []Decision
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return decisions, err
		}
		s, err := e.decide(ctx, f, f.Stages[name], settled, lock[name])
		if err != nil {
			return decisions, err
		}
		if exec == nil {
			e.logDecision(s.Decision)
		} else if err := exec(ctx, s); err != nil {
			return decisions, err
		}
		settled[name] = output{digest: s.digest, dir: s.Out}
		decisions = append(decisions, s.Decision)
	}
	return decisions, nil
}

// stagesToVisit is the file's order, or with Only that stage and the stages
// it depends on.
func (e *Engine) stagesToVisit(f *File) ([]string, error) {
	if e.Only == "" {
		return f.Order, nil
	}
	if _, ok := f.Stages[e.Only]; !ok {
		return nil, fmt.Errorf("pipeline %s: no stage %q (stages: %v)", f.Path, e.Only, f.Order)
	}
	needed := f.upstream(e.Only)
	names := make([]string, 0, len(needed))
	for _, name := range f.Order {
		if needed[name] {
			names = append(names, name)
		}
	}
	return names, nil
}

func (e *Engine) logDecision(d Decision) {
	if e.Log != nil {
		WriteDecision(e.Log, d)
	}
}

// WriteDecision writes a decision as text: the stage, run or cached, its
// output, then its reasons one a line.
func WriteDecision(w io.Writer, d Decision) {
	state := "run   "
	if d.Cached {
		state = "cached"
	}
	fmt.Fprintf(w, "%-12s %s %s", d.Stage, state, d.Out)
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "\n%14s- %s", "", r)
	}
	fmt.Fprintln(w)
}
