package pipeline

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mdlm-go/mdlm/internal/filelock"
)

// executor carries out the engine's decisions for one Run: it copies from
// the shared cache or runs the stage, and records what it settled.
type executor struct {
	*Engine
	f      *File
	cached map[string]LockEntry // stages found settled, written to the lock file at the end
	remote map[string]*step     // stages settled in the bucket cache, not fetched (bucketcache.go)
}

// execute carries out a stage's decision. A stage this process would build
// is built under the engine's lock on its output, and judged again once the
// lock is held, since another run may have built it meanwhile (issue 19,
// defect 7). On return s holds the settled output's digest ("" for a shard
// that does not publish).
func (x *executor) execute(ctx context.Context, s *step) error {
	name := s.st.Name
	if x.buildsOrCopies(s) {
		held, err := x.lockOutput(ctx, name, s.Out)
		if err != nil {
			return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, name, err)
		}
		defer held.Unlock()
		x.judge(ctx, x.f, s)
	}
	if s.source == inShared && x.cacheInBucket() {
		x.settleRemote(s)
	} else if s.source == inShared {
		dig, err := x.pull(ctx, s.st.Spec, s.Out, true)
		if err == nil && dig == "" {
			err = fmt.Errorf("its copy in %s went away while it was being copied", x.sharedName())
		}
		switch {
		case err != nil && ctx.Err() == nil && x.builds(s):
			x.sharedUnusable(s, err) // built here instead
		case err != nil:
			return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, name, err)
		default:
			s.digest = dig
		}
	}
	x.logDecision(s.Decision)
	if s.Cached {
		x.cached[name] = s.lockEntry()
		return x.keepInBucket(ctx, s)
	}
	return x.build(ctx, s)
}

// builds reports whether this process would build the step's output itself:
// it is not one shard of several (shards run at once and share the work
// directory; stage.Execute coordinates them) and, with Only, it is that stage.
func (x *executor) builds(s *step) bool {
	return !s.sharded && (x.Only == "" || s.st.Name == x.Only)
}

// build runs the stage's command line, verifies its output again (the
// process may have found it built by another run and skipped) and records
// it in the lock file and the shared cache. An input settled only in the
// bucket cache is fetched first, or streamed (stream.go); a stage that fails
// on a streamed input runs once more on a verified local copy when that
// input turns out damaged or unreadable (retryLocal).
func (x *executor) build(ctx context.Context, s *step) error {
	name, sp := s.st.Name, s.st.Spec
	streamed, err := x.fetchInputs(ctx, s)
	if err != nil {
		return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, name, err)
	}
	// The stage locks its output beside it: the cache directory must exist,
	// though no input was fetched into it (a shard streaming its input).
	if err := os.MkdirAll(filepath.Dir(s.Out), 0o755); err != nil {
		return fmt.Errorf("pipeline %s: stage %q: cache dir: %w", x.f.Name, name, err)
	}
	err = x.runStage(ctx, s, x.commandLine(s, streamed))
	if err != nil && len(streamed) > 0 && ctx.Err() == nil {
		err = x.retryLocal(ctx, s, streamed, err)
	}
	if err != nil {
		return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, name, err)
	}
	s.digest = outputDigest(sp, s.Out)
	switch {
	case s.digest == "" && s.sharded:
		s.Reasons = append(s.Reasons, fmt.Sprintf("shard %d of %d done; the process that finishes the last shard publishes", x.ShardIndex, x.NumShards))
		return nil
	case s.digest == "":
		err := fmt.Errorf("pipeline %s: stage %q produced no verifiable %s in %s", x.f.Name, name, sp.Output, s.Out)
		x.markFailed(nil, s, err)
		return err
	}
	if err := updateLock(x.f, map[string]LockEntry{name: s.lockEntry()}); err != nil {
		return err
	}
	x.clearRunState(name)
	if err := x.push(ctx, sp, s.Out); err != nil {
		return fmt.Errorf("pipeline %s: stage %q: %w", x.f.Name, name, err)
	}
	return nil
}

// commandLine is the step's command line with the streamed inputs (input
// name -> s3:// address) in place of their local directories, and this
// array task's shard flags.
func (x *executor) commandLine(s *step, streamed map[string]string) []string {
	if len(streamed) == 0 && !s.sharded {
		return s.Args
	}
	paths := maps.Clone(s.paths)
	maps.Copy(paths, streamed)
	var shard []string
	if s.sharded {
		shard = []string{fmt.Sprintf("--shard-index=%d", x.ShardIndex), fmt.Sprintf("--num-shards=%d", x.NumShards)}
	}
	return Args(s.st.Spec, paths, s.st.With, s.Out, shard...)
}

// runStage runs one command line of the step, recording it in the run state.
func (x *executor) runStage(ctx context.Context, s *step, args []string) error {
	start := time.Now()
	x.markRunning(s)
	if err := x.Exec(ctx, args); err != nil {
		x.markFailed(ctx.Err(), s, err)
		return err
	}
	s.Seconds = time.Since(start).Seconds()
	if x.Log != nil {
		fmt.Fprintf(x.Log, "%-12s done in %.1fs\n", s.st.Name, s.Seconds)
	}
	return nil
}

// recordCached writes the stages found settled into the lock file, in one
// update at the end of the run.
func (x *executor) recordCached() error {
	if len(x.cached) == 0 {
		return nil
	}
	x.clearRunState(slices.Collect(maps.Keys(x.cached))...)
	return updateLock(x.f, x.cached)
}

// engineLockPath is the engine's lock for an output: beside it, distinct from
// the stage's own output lock (artifact.LockPath), which the stage takes in
// this same process.
func engineLockPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".engine.lock")
}

// lockOutput takes the engine's lock on out, saying so when another run holds it.
func (e *Engine) lockOutput(ctx context.Context, name, out string) (*filelock.Lock, error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	return filelock.Acquire(ctx, engineLockPath(out), func() {
		if e.Log != nil {
			fmt.Fprintf(e.Log, "%-12s waiting for another run building %s\n", name, out)
		}
	})
}
