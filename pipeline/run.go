package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filehash"
)

// Decision is the engine's verdict on one stage, with its reasons as data.
type Decision struct {
	Stage   string   `json:"stage"`
	Key     string   `json:"key"`
	Out     string   `json:"out"`
	Cached  bool     `json:"cached"`
	Reasons []string `json:"reasons,omitempty"`
	Args    []string `json:"args"`
	Seconds float64  `json:"seconds,omitempty"` // wall time of a stage that ran
}

// LockEntry records a finished stage in the lock file beside the pipeline.
type LockEntry struct {
	Key    string            `json:"key"`
	Out    string            `json:"out"`
	Digest string            `json:"digest"`
	Params map[string]any    `json:"params"`
	Inputs map[string]string `json:"inputs"` // input -> artifact digest
}

// Engine runs pipelines; Exec runs one stage's command line (the CLI passes its
// own parser, so a stage runs exactly as it would by hand).
type Engine struct {
	CacheDir string
	Exec     func(args []string) error
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
	// Shared is a cache directory shared between machines (CI, a team): a stage
	// missing here but present and verified there is copied instead of run, and
	// every stage that runs is copied there (see shared.go).
	Shared string
}

// CacheKey is sha256 of the canonical form of (kind, version, meaningful params,
// input digests): map keys sorted by encoding/json, cosmetic flags left out.
func CacheKey(kind string, k Kind, with map[string]any, inputs map[string]string) (string, map[string]any) {
	params := map[string]any{}
	for f, v := range with {
		if !contains(k.Cosmetic, f) {
			params[f] = fmt.Sprint(v) // "64" and 64 mean the same flag value
		}
	}
	canon, _ := json.Marshal(map[string]any{"kind": kind, "version": k.Version, "params": params, "inputs": inputs})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), params
}

// lookup finds a stage's finished output here or in the shared cache.
func (e *Engine) lookup(kind Kind, with map[string]any, out string, copy bool) (dig string, fromShared bool, err error) {
	if dig = finishedDigest(kind, out, with); dig != "" || e.Shared == "" {
		return dig, false, nil
	}
	dig, err = e.pull(kind, with, out, copy)
	return dig, dig != "", err
}

// awaitInput polls for the output of a stage that another process (a job
// started at the same time, as on Kubernetes) is building, up to WaitInputs.
func (e *Engine) awaitInput(name string, kind Kind, with map[string]any, out string, copy bool) (string, bool, error) {
	poll := e.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	deadline := time.Now().Add(e.WaitInputs)
	if e.Log != nil {
		fmt.Fprintf(e.Log, "%-12s waiting up to %s for %s\n", name, e.WaitInputs, out)
	}
	for time.Now().Before(deadline) {
		time.Sleep(min(poll, time.Until(deadline)))
		dig, shared, err := e.lookup(kind, with, out, copy)
		if err != nil || dig != "" {
			return dig, shared, err
		}
	}
	return "", false, nil
}

// finishedDigest is outputDigest, except that an interrupted training run (its
// last checkpoint short of the requested steps) counts as not built.
func finishedDigest(kind Kind, dir string, with map[string]any) string {
	dig := outputDigest(kind, dir)
	if dig != "" && kind.Output == checkpoint.Type && !trainingFinished(dir, with) {
		return ""
	}
	return dig
}

// outputDigest returns the digest of a published output (a run directory's last
// checkpoint for train), or "" if there is none that verifies.
func outputDigest(kind Kind, dir string) string {
	if kind.Output == checkpoint.Type {
		d, err := checkpoint.Resolve(dir)
		if err != nil || d == dir {
			return ""
		}
		dir = d
	}
	m, err := artifact.Read(dir, kind.Output)
	if err != nil || artifact.Verify(dir, m) != nil {
		return ""
	}
	return m.Digest()
}

func lockPath(f *File) string { return f.Path + ".lock.json" }

func readLock(f *File) map[string]LockEntry {
	lock := map[string]LockEntry{}
	if raw, err := os.ReadFile(lockPath(f)); err == nil {
		json.Unmarshal(raw, &lock)
	}
	return lock
}

// Plan decides every stage without running anything (dry run): stages whose
// inputs are not produced yet are planned to run.
func (e *Engine) Plan(f *File) ([]Decision, error) { return e.walk(f, false) }

// Run executes the stages that are not cached, in order, and records them.
func (e *Engine) Run(f *File) ([]Decision, error) { return e.walk(f, true) }

func (e *Engine) walk(f *File, execute bool) ([]Decision, error) {
	lock := readLock(f)
	digests := map[string]string{} // stage -> output digest
	outs := map[string]string{}
	cached := map[string]LockEntry{}
	var needed map[string]bool
	if e.Only != "" {
		if _, ok := f.Stages[e.Only]; !ok {
			return nil, fmt.Errorf("pipeline %s: no stage %q (stages: %v)", f.Path, e.Only, f.Order)
		}
		needed = f.upstream(e.Only)
	}
	var decisions []Decision
	for _, name := range f.Order {
		if needed != nil && !needed[name] {
			continue
		}
		st := f.Stages[name]
		kind := Kinds[st.Run]
		inDigests, inPaths := map[string]string{}, map[string]string{}
		for in, from := range st.Inputs {
			inDigests[in] = digests[from]
			inPaths[in] = outs[from]
		}
		if err := digestSources(kind, st.With, inDigests); err != nil {
			return decisions, fmt.Errorf("%s:%d: stage %q: %w", f.Path, st.Line, name, err)
		}
		key, params := CacheKey(st.Run, kind, st.With, inDigests)
		out, _ := filepath.Abs(filepath.Join(e.CacheDir, fmt.Sprintf("%s-%s", name, key[:16])))
		d := Decision{Stage: name, Key: key, Out: out, Args: kind.Args(st.Run, inPaths, st.With, out)}
		dig, fromShared, err := e.lookup(kind, st.With, out, execute)
		if err != nil {
			return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
		}
		if dig == "" && e.Only != "" && name != e.Only && e.WaitInputs > 0 {
			if dig, fromShared, err = e.awaitInput(name, kind, st.With, out, execute); err != nil {
				return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
			}
		}
		if fromShared {
			d.Reasons = []string{"from the shared cache " + e.Shared}
		}
		if dig != "" {
			d.Cached = true
		} else {
			d.Reasons = why(lock[name], kind, params, inDigests)
		}
		if e.Only != "" && name != e.Only && !d.Cached {
			return decisions, fmt.Errorf("pipeline %s: stage %q needs stage %q, which has no verified output in %s (did its job fail?)",
				f.Name, e.Only, name, out)
		}
		if e.Log != nil {
			state := "run   "
			if d.Cached {
				state = "cached"
			}
			fmt.Fprintf(e.Log, "%-12s %s %s", name, state, out)
			for _, r := range d.Reasons {
				fmt.Fprintf(e.Log, "\n%14s- %s", "", r)
			}
			fmt.Fprintln(e.Log)
		}
		if !d.Cached && execute {
			args := d.Args
			sharded := st.Shards > 1 && e.NumShards > 1
			if sharded {
				args = append(append([]string{}, args...), fmt.Sprintf("--shard-index=%d", e.ShardIndex), fmt.Sprintf("--num-shards=%d", e.NumShards))
			}
			if kind.Output == checkpoint.Type {
				// An interrupted run of this very key (same flags, same inputs) continues.
				if last, _ := checkpoint.Resolve(out); last != out {
					args = append(append([]string{}, args...), "--resume")
					d.Reasons = append(d.Reasons, "resuming an interrupted run from "+filepath.Base(last))
				}
			}
			start := time.Now()
			if err := e.Exec(args); err != nil {
				return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
			}
			d.Seconds = time.Since(start).Seconds()
			if e.Log != nil {
				fmt.Fprintf(e.Log, "%-12s done in %.1fs\n", name, d.Seconds)
			}
			if dig = outputDigest(kind, out); dig == "" && sharded {
				d.Reasons = append(d.Reasons, fmt.Sprintf("shard %d of %d done; the process that finishes the last shard publishes", e.ShardIndex, e.NumShards))
				decisions = append(decisions, d)
				continue
			}
			if dig == "" {
				return decisions, fmt.Errorf("pipeline %s: stage %q produced no verifiable %s in %s", f.Name, name, kind.Output, out)
			}
			entry := LockEntry{Key: key, Out: out, Digest: dig, Params: params, Inputs: inDigests}
			if err := updateLock(f, map[string]LockEntry{name: entry}); err != nil {
				return decisions, err
			}
			if err := e.push(kind, st.With, out); err != nil {
				return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
			}
		}
		if d.Cached && execute {
			cached[name] = LockEntry{Key: key, Out: out, Digest: dig, Params: params, Inputs: inDigests}
		}
		digests[name], outs[name] = dig, out
		decisions = append(decisions, d)
	}
	if execute && len(cached) > 0 {
		return decisions, updateLock(f, cached)
	}
	return decisions, nil
}

// why explains a cache miss against the stage's previous run in the lock file.
func why(prev LockEntry, kind Kind, params map[string]any, inputs map[string]string) []string {
	if prev.Key == "" {
		return []string{"never ran (no lock entry)"}
	}
	var r []string
	keys := map[string]bool{}
	for k := range params {
		keys[k] = true
	}
	for k := range prev.Params {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if fmt.Sprint(prev.Params[k]) != fmt.Sprint(params[k]) {
			r = append(r, fmt.Sprintf("param %s changed: %v -> %v", k, prev.Params[k], params[k]))
		}
	}
	for in, d := range inputs {
		if prev.Inputs[in] != d {
			if d == "" {
				r = append(r, fmt.Sprintf("input %s is being rebuilt", in))
			} else {
				r = append(r, fmt.Sprintf("input %s changed: %.19s -> %.19s", in, prev.Inputs[in], d))
			}
		}
	}
	if len(r) == 0 {
		r = append(r, fmt.Sprintf("stage %s version or cached output changed (output missing or failed verification)", kind.Output))
	}
	return r
}

// updateLock merges entries into the lock file under an exclusive flock, so
// stages running at once (scheduler jobs, array tasks) do not drop each other's
// entries.
func updateLock(f *File, entries map[string]LockEntry) error {
	guard, err := os.OpenFile(lockPath(f)+".flock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("pipeline lock %s: %w", lockPath(f), err)
	}
	defer guard.Close()
	switch err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); {
	case err == nil:
		defer syscall.Flock(int(guard.Fd()), syscall.LOCK_UN)
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		// A file system without locks (some NFS mounts): the lock file is a
		// record, not the source of truth (outputs are verified on their own),
		// so go on; at worst a concurrent update drops an entry.
	default:
		return fmt.Errorf("pipeline lock %s: %w", lockPath(f), err)
	}
	lock := readLock(f)
	for name, e := range entries {
		lock[name] = e
	}
	raw, err := json.MarshalIndent(lock, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(lockPath(f), func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}

// digestSources adds the sha256 of every local source file of a stage (download's
// positional sources) to its input digests, so an edited corpus invalidates the
// cache although its path did not change.
func digestSources(kind Kind, with map[string]any, inputs map[string]string) error {
	if kind.Positional == "" {
		return nil
	}
	var paths []string
	switch v := with[kind.Positional].(type) {
	case []any:
		for _, e := range v {
			paths = append(paths, fmt.Sprint(e))
		}
	case nil:
	default:
		paths = append(paths, fmt.Sprint(v))
	}
	for _, p := range paths {
		matches, _ := filepath.Glob(p)
		if len(matches) == 0 {
			return fmt.Errorf("source %q: no such file", p)
		}
		for _, m := range matches {
			err := filepath.WalkDir(m, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				sum, _, err := filehash.Sum(path)
				if err != nil {
					return err
				}
				inputs["source:"+path] = "sha256:" + sum
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// trainingFinished reports whether a run directory's last checkpoint is at the
// requested number of steps (the train command's default is 1000).
func trainingFinished(run string, with map[string]any) bool {
	last, err := checkpoint.Resolve(run)
	if err != nil || last == run {
		return false
	}
	raw, err := os.ReadFile(filepath.Join(last, checkpoint.StateFile))
	if err != nil {
		return false
	}
	var st checkpoint.TrainState
	if json.Unmarshal(raw, &st) != nil {
		return false
	}
	want := "1000"
	if v, ok := with["steps"]; ok {
		want = fmt.Sprint(v)
	}
	return fmt.Sprint(st.Step) == want
}
