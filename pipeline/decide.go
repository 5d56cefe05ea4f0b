package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
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

// source says where a stage's output is, as a decision found it.
type source int

const (
	missing  source = iota // to run
	local                  // verified in the cache directory and agreeing with the lock file
	inShared               // verified in the shared cache: to be copied here
)

// output is a settled stage as the stages that read it see it.
type output struct {
	digest string // "" while it is not built (a plan), or a shard that did not publish
	dir    string
}

// step is one stage's decision with what executing it needs.
type step struct {
	Decision
	st      *Stage
	params  map[string]any    // resolved flag values: what the key covers (params.go)
	inputs  map[string]string // input (or "<flag>:<file>") -> digest
	paths   map[string]string // input -> the directory Args names (a streamed input's is replaced: stream.go)
	prev    LockEntry         // the stage's entry in the lock file when the walk began
	sharded bool              // this process is one array task of a stage with shards
	digest  string            // the output's digest, once settled
	source  source
}

// lockEntry is what the lock file records for the step once it is settled.
func (s *step) lockEntry() LockEntry {
	sp := s.st.Spec
	return LockEntry{Format: KeyFormat, Key: s.Key, Kind: sp.Kind, Version: sp.Version, Out: s.Out,
		Digest: s.digest, Params: s.params, Inputs: s.inputs}
}

// decide works out what a stage is (its key, output and command line, from
// the outputs of the stages it reads, in settled) and whether it must run.
// With Only, a stage it needs must be settled: decide waits up to
// WaitInputs for it, then fails. Deciding writes nothing.
func (e *Engine) decide(ctx context.Context, f *File, st *Stage, settled map[string]output, prev LockEntry) (*step, error) {
	s, err := e.describe(f, st, settled)
	if err != nil {
		return nil, err
	}
	s.prev = prev
	e.judge(ctx, f, s)
	if e.Only == "" || st.Name == e.Only || s.Cached {
		return s, nil
	}
	if err := e.awaitInput(ctx, f, s); err != nil {
		return nil, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, st.Name, err)
	}
	if !s.Cached {
		return nil, fmt.Errorf("pipeline %s: stage %q needs stage %q, which has no verified output in %s (did its job fail?)",
			f.Name, e.Only, st.Name, s.Out)
	}
	return s, nil
}

// describe computes what identifies a stage's output: the digests of its
// inputs and of the files its flags name, its resolved parameters, its cache
// key, the output directory and the command line that builds it.
func (e *Engine) describe(f *File, st *Stage, settled map[string]output) (*step, error) {
	sp := st.Spec
	inputs, paths := map[string]string{}, map[string]string{}
	for in, from := range st.Inputs {
		inputs[in], paths[in] = settled[from].digest, settled[from].dir
	}
	if err := fileDigests(sp, st.With, inputs); err != nil {
		return nil, fmt.Errorf("%s:%d: stage %q: %w", f.Path, st.Line, st.Name, err)
	}
	params, err := resolveParams(sp, st.With)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: stage %q: %w", f.Path, st.Line, st.Name, err)
	}
	key := keyOf(sp, params, inputs)
	cache, err := e.localCache()
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: stage %q: %w", f.Name, st.Name, err)
	}
	out, err := filepath.Abs(filepath.Join(cache, fmt.Sprintf("%s-%s", st.Name, key[:16])))
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: stage %q: cache dir: %w", f.Name, st.Name, err)
	}
	d := Decision{Stage: st.Name, Matrix: st.Matrix, Key: key, Out: out, Args: Args(sp, paths, st.With, out)}
	return &step{Decision: d, st: st, params: params, inputs: inputs, paths: paths, sharded: st.Shards > 1 && e.NumShards > 1}, nil
}

// judge looks for the step's output: verified here and agreeing with the lock
// file (cached), else verified in the shared cache (cached, to be copied),
// else missing, with the reasons it must run. It may be asked again (after
// waiting for another run), and starts afresh each time.
func (e *Engine) judge(ctx context.Context, f *File, s *step) {
	sp := s.st.Spec
	s.Cached, s.Reasons, s.digest, s.source = false, nil, "", missing
	if dig := outputDigest(sp, s.Out); dig != "" {
		r := lockDisagrees(f, s.st.Name, s.Key, dig, s.prev)
		if r == "" {
			s.Cached, s.digest, s.source = true, dig, local
			return
		}
		s.Reasons = []string{r}
	} else if dig := e.sharedDigest(ctx, sp, s.Out); dig != "" {
		s.Cached, s.digest, s.source = true, dig, inShared
		s.Reasons = []string{"from " + e.sharedName()}
		return
	}
	if len(s.Reasons) == 0 {
		s.Reasons = why(s.prev, sp, s.params, s.inputs)
	}
	s.Reasons = append(s.Reasons, resumable(s.Out)...)
}

// awaitInput judges again, every Poll up to WaitInputs, a stage that another
// process (a job started at the same time, as on Kubernetes) is building.
func (e *Engine) awaitInput(ctx context.Context, f *File, s *step) error {
	if e.WaitInputs <= 0 {
		return nil
	}
	poll := e.Poll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	deadline := time.Now().Add(e.WaitInputs)
	if e.Log != nil {
		fmt.Fprintf(e.Log, "%-12s waiting up to %s for %s\n", s.st.Name, e.WaitInputs, s.Out)
	}
	for !s.Cached && time.Now().Before(deadline) {
		select {
		case <-time.After(min(poll, time.Until(deadline))):
		case <-ctx.Done():
			return ctx.Err()
		}
		e.judge(ctx, f, s)
	}
	return nil
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
