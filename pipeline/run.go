package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/internal/filelock"
	"github.com/mdlm-go/mdlm/stage"
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
	// Matrix holds the axis values of a matrix stage's expansion (issue 24;
	// see matrix.go), nil for a stage of no matrix.
	Matrix map[string]string `json:"matrix,omitempty"`
}

// LockEntry records a finished stage in the lock file beside the pipeline.
type LockEntry struct {
	Key     string            `json:"key"`
	Kind    string            `json:"kind"`
	Version int               `json:"version"`
	Out     string            `json:"out"`
	Digest  string            `json:"digest"`
	Params  map[string]any    `json:"params"`
	Inputs  map[string]string `json:"inputs"` // input (or "<flag>:<file>") -> digest
}

// Engine runs pipelines; Exec runs one stage's command line (the CLI passes its
// own parser, so a stage runs exactly as it would by hand).
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
	// Shared is a cache directory shared between machines (CI, a team): a stage
	// missing here but present and verified there is copied instead of run, and
	// every stage that runs is copied there (see shared.go).
	Shared string
}

// CacheKey is sha256 of the canonical form of (kind, version, meaningful params,
// input digests): map keys sorted by encoding/json, cosmetic flags left out.
// Inputs include the content digest of every file a file-valued flag names.
func CacheKey(sp stage.Spec, with map[string]any, inputs map[string]string) (string, map[string]any) {
	params := map[string]any{}
	for f, v := range with {
		if fl, ok := sp.Flag(f); ok && !fl.Cosmetic {
			params[f] = fmt.Sprint(v) // "64" and 64 mean the same flag value
		}
	}
	canon, _ := json.Marshal(map[string]any{"kind": sp.Kind, "version": sp.Version, "params": params, "inputs": inputs})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:]), params
}

// lookup finds a stage's finished output here or in the shared cache.
func (e *Engine) lookup(sp stage.Spec, out string, copy bool) (dig string, fromShared bool, err error) {
	if dig = outputDigest(sp, out); dig != "" || e.Shared == "" {
		return dig, false, nil
	}
	dig, err = e.pull(sp, out, copy)
	return dig, dig != "", err
}

// awaitInput polls for the output of a stage that another process (a job
// started at the same time, as on Kubernetes) is building, up to WaitInputs.
func (e *Engine) awaitInput(ctx context.Context, name string, sp stage.Spec, out string, copy bool) (string, bool, error) {
	poll := e.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	deadline := time.Now().Add(e.WaitInputs)
	if e.Log != nil {
		fmt.Fprintf(e.Log, "%-12s waiting up to %s for %s\n", name, e.WaitInputs, out)
	}
	for time.Now().Before(deadline) {
		select {
		case <-time.After(min(poll, time.Until(deadline))):
		case <-ctx.Done():
			return "", false, ctx.Err()
		}
		dig, shared, err := e.lookup(sp, out, copy)
		if err != nil || dig != "" {
			return dig, shared, err
		}
	}
	return "", false, nil
}

// outputDigest returns the digest of a published output of the stage's type
// that verifies, or "" if there is none.
func outputDigest(sp stage.Spec, dir string) string {
	m, err := artifact.Read(dir, sp.Output)
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
func (e *Engine) Plan(ctx context.Context, f *File) ([]Decision, error) { return e.walk(ctx, f, false) }

// Run executes the stages that are not cached, in order, and records them.
func (e *Engine) Run(ctx context.Context, f *File) ([]Decision, error) { return e.walk(ctx, f, true) }

func (e *Engine) walk(ctx context.Context, f *File, execute bool) ([]Decision, error) {
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
		if err := ctx.Err(); err != nil {
			return decisions, err
		}
		st := f.Stages[name]
		sp := st.Spec
		inDigests, inPaths := map[string]string{}, map[string]string{}
		for in, from := range st.Inputs {
			inDigests[in] = digests[from]
			inPaths[in] = outs[from]
		}
		if err := fileDigests(sp, st.With, inDigests); err != nil {
			return decisions, fmt.Errorf("%s:%d: stage %q: %w", f.Path, st.Line, name, err)
		}
		key, params := CacheKey(sp, st.With, inDigests)
		out, _ := filepath.Abs(filepath.Join(e.CacheDir, fmt.Sprintf("%s-%s", name, key[:16])))
		d := Decision{Stage: name, Matrix: st.Matrix, Key: key, Out: out, Args: Args(sp, inPaths, st.With, out)}
		sharded := st.Shards > 1 && e.NumShards > 1
		var held *filelock.Lock
		var err error
		if execute && !sharded && (e.Only == "" || name == e.Only) && !e.settled(f, name, key, sp, out, lock[name]) {
			// One engine decides and builds an output at a time (issue 19,
			// defect 7); a second waits, then finds it built.
			if held, err = e.lockOutput(ctx, name, out); err != nil {
				return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
			}
		}
		dig, fromShared, err := e.lookup(sp, out, execute)
		if err != nil {
			held.Unlock()
			return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
		}
		if dig != "" && !fromShared {
			if r := lockDisagrees(f, name, key, dig, lock[name]); r != "" {
				dig, d.Reasons = "", []string{r}
			}
		}
		if dig == "" && e.Only != "" && name != e.Only && e.WaitInputs > 0 {
			if dig, fromShared, err = e.awaitInput(ctx, name, sp, out, execute); err != nil {
				return decisions, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
			}
		}
		if fromShared {
			d.Reasons = []string{"from the shared cache " + e.Shared}
		}
		switch {
		case dig != "":
			d.Cached = true
		case len(d.Reasons) == 0:
			d.Reasons = why(lock[name], sp, params, inDigests)
		}
		if !d.Cached {
			d.Reasons = append(d.Reasons, resumable(out)...)
		}
		if e.Only != "" && name != e.Only && !d.Cached {
			held.Unlock()
			return decisions, fmt.Errorf("pipeline %s: stage %q needs stage %q, which has no verified output in %s (did its job fail?)",
				f.Name, e.Only, name, out)
		}
		e.logDecision(d)
		if !d.Cached && execute {
			dig, err = e.execute(ctx, f, st, &d, key, params, inDigests, sharded)
			held.Unlock()
			if err != nil {
				return decisions, err
			}
			if dig == "" { // a shard that does not publish
				decisions = append(decisions, d)
				continue
			}
		}
		held.Unlock()
		if d.Cached && execute {
			cached[name] = LockEntry{Key: key, Kind: sp.Kind, Version: sp.Version, Out: out, Digest: dig, Params: params, Inputs: inDigests}
		}
		digests[name], outs[name] = dig, out
		decisions = append(decisions, d)
	}
	if execute && len(cached) > 0 {
		return decisions, updateLock(f, cached)
	}
	return decisions, nil
}

// execute runs a stage that is not cached, re-verifies its output and records
// it in the lock file and the shared cache. It returns the output's digest,
// or "" for a shard whose process did not publish.
func (e *Engine) execute(ctx context.Context, f *File, st *Stage, d *Decision, key string, params map[string]any, inDigests map[string]string, sharded bool) (string, error) {
	name, sp, out := st.Name, st.Spec, d.Out
	args := d.Args
	if sharded {
		args = append(append([]string{}, args...), fmt.Sprintf("--shard-index=%d", e.ShardIndex), fmt.Sprintf("--num-shards=%d", e.NumShards))
	}
	start := time.Now()
	if err := e.Exec(ctx, args); err != nil {
		return "", fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
	}
	d.Seconds = time.Since(start).Seconds()
	if e.Log != nil {
		fmt.Fprintf(e.Log, "%-12s done in %.1fs\n", name, d.Seconds)
	}
	// Verified again now that the process returned: it may have
	// found the output built by another run and skipped.
	dig := outputDigest(sp, out)
	if dig == "" && sharded {
		d.Reasons = append(d.Reasons, fmt.Sprintf("shard %d of %d done; the process that finishes the last shard publishes", e.ShardIndex, e.NumShards))
		return "", nil
	}
	if dig == "" {
		return "", fmt.Errorf("pipeline %s: stage %q produced no verifiable %s in %s", f.Name, name, sp.Output, out)
	}
	entry := LockEntry{Key: key, Kind: sp.Kind, Version: sp.Version, Out: out, Digest: dig, Params: params, Inputs: inDigests}
	if err := updateLock(f, map[string]LockEntry{name: entry}); err != nil {
		return "", err
	}
	if err := e.push(sp, out); err != nil {
		return "", fmt.Errorf("pipeline %s: stage %q: %w", f.Name, name, err)
	}
	return dig, nil
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

// settled reports whether out verifies and agrees with the lock file, so
// that no lock is needed to decide that it is cached.
func (e *Engine) settled(f *File, name, key string, sp stage.Spec, out string, prev LockEntry) bool {
	dig := outputDigest(sp, out)
	return dig != "" && lockDisagrees(f, name, key, dig, prev) == ""
}

// lockDisagrees returns why a verified output is not taken as cached when the
// lock file recorded another digest for the same key: its manifest was edited
// to match edited files (issue 19, defect 16c). The lock file is read again
// first, in case another run has just rebuilt the stage.
func lockDisagrees(f *File, name, key, dig string, prev LockEntry) string {
	if prev.Key != key || prev.Digest == "" || prev.Digest == dig {
		return ""
	}
	if now := readLock(f)[name]; now.Key != key || now.Digest == dig {
		return ""
	}
	return fmt.Sprintf("output digest %.19s differs from the lock file's %.19s for this key (changed after it was built)", dig, prev.Digest)
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

// resumable says what an interrupted run of this very key left to resume from.
func resumable(out string) []string {
	var r []string
	if _, err := os.Stat(out + stage.WorkSuffix); err == nil {
		r = append(r, "resumes the interrupted run in "+filepath.Base(out+stage.WorkSuffix))
	}
	if _, err := os.Stat(out + stage.PartialSuffix); err == nil {
		r = append(r, "keeps the finished shards in "+filepath.Base(out+stage.PartialSuffix))
	}
	return r
}

// why explains a cache miss against the stage's previous run in the lock
// file, cheapest check first: kind and version, then params, then inputs
// (artifacts and files), then the output itself.
func why(prev LockEntry, sp stage.Spec, params map[string]any, inputs map[string]string) []string {
	if prev.Key == "" {
		return []string{"never ran (no lock entry)"}
	}
	var r []string
	if prev.Kind != "" && (prev.Kind != sp.Kind || prev.Version != sp.Version) { // "": a lock entry of an older mdlm
		r = append(r, fmt.Sprintf("stage kind %s version %d -> %s version %d", prev.Kind, prev.Version, sp.Kind, sp.Version))
	}
	for _, k := range unionKeys(params, prev.Params) {
		if fmt.Sprint(prev.Params[k]) != fmt.Sprint(params[k]) {
			r = append(r, fmt.Sprintf("param %s changed: %v -> %v", k, show(prev.Params[k]), show(params[k])))
		}
	}
	for _, in := range unionKeys(inputs, prev.Inputs) {
		was, had := prev.Inputs[in]
		now, has := inputs[in]
		switch {
		case !had:
			r = append(r, fmt.Sprintf("input %s added", in))
		case !has:
			r = append(r, fmt.Sprintf("input %s removed", in))
		case now == "":
			r = append(r, fmt.Sprintf("input %s is being rebuilt", in))
		case now != was:
			r = append(r, fmt.Sprintf("input %s changed: %.19s -> %.19s", in, was, now))
		}
	}
	if len(r) == 0 {
		r = append(r, fmt.Sprintf("output missing or failed verification (%s)", sp.Output))
	}
	return r
}

func show(v any) any {
	if v == nil {
		return "(default)"
	}
	return v
}

func unionKeys[A, B any](a map[string]A, b map[string]B) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	return sortedKeys(seen)
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

// fileDigests adds to inputs the content digest of every file or directory
// that a file-valued flag (digest tag) names, under "<flag>:<path>", so an
// edited tokenizer, corpus or scorer invalidates the stages that read it
// although its path did not change. A digest:"file" flag must name existing
// files (globs allowed); a digest:"name-or-file" value that is no file is a
// built-in name and adds nothing.
func fileDigests(sp stage.Spec, with map[string]any, inputs map[string]string) error {
	for _, fl := range sp.Flags {
		v, ok := with[fl.Name]
		if fl.Digest == "" || !ok {
			continue
		}
		for _, p := range values(v) {
			if stage.IsReference(p) { // hub:org/name@revision: keyed as written
				inputs[fl.Name+":"+p] = p
				continue
			}
			matches := []string{p}
			if fl.Digest == stage.DigestFile {
				matches, _ = filepath.Glob(p)
				if len(matches) == 0 {
					return fmt.Errorf("with.%s: %q: no such file", fl.Name, p)
				}
			} else if _, err := os.Stat(p); err != nil {
				continue
			}
			for _, m := range matches {
				d, err := contentDigest(m)
				if err != nil {
					return fmt.Errorf("with.%s: %w", fl.Name, err)
				}
				inputs[fl.Name+":"+m] = d
			}
		}
	}
	return nil
}

// contentDigest is a file's sha256; for a directory, the digest of its
// artifact manifest if it is an artifact (verified), else of its files'
// relative paths and sha256s.
func contentDigest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		sum, _, err := filehash.Sum(path)
		return "sha256:" + sum, err
	}
	if m, err := artifact.Read(path, ""); err == nil {
		if err := artifact.Verify(path, m); err != nil {
			return "", err
		}
		return m.Digest(), nil
	}
	files, err := artifact.ListFiles(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, rel := range files {
		sum, _, err := filehash.Sum(filepath.Join(path, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\n", rel, sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
