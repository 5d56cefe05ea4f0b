// Package reffix loads the PyTorch reference parity fixtures (see
// ../shared/fixtures/reference/FORMAT.md) for the TestReference... tests: it lists
// every fixture folder, reads its config.json and tensors, and compares our values
// with stated tolerances, logging the worst error per tensor.
package reffix

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mdlm-go/mdlm/safetensors"
)

// EnvVar overrides the fixtures folder.
const EnvVar = "MDLM_REFERENCE_FIXTURES"

// Config is a fixture's config.json.
type Config struct {
	Seed         int     `json:"seed"`
	Batch        int     `json:"batch"`
	Length       int     `json:"length"`
	Hidden       int     `json:"hidden_size"`
	Heads        int     `json:"n_heads"`
	Blocks       int     `json:"n_blocks"`
	Cond         int     `json:"cond_dim"`
	Vocab        int     `json:"vocab_size"`
	MaskIndex    int     `json:"mask_index"`
	SamplingEps  float64 `json:"sampling_eps"`
	Noise        string  `json:"noise"`
	SamplerSteps int     `json:"sampler_steps"`
	SamplerEps   float64 `json:"sampler_eps"`
}

// Fixture is one fixture folder.
type Fixture struct {
	Name   string
	Dir    string
	Config Config
}

// Root is the fixtures folder: $MDLM_REFERENCE_FIXTURES, or ../shared/fixtures/reference
// relative to the repository root (found from the test's working directory).
func Root(t testing.TB) string {
	if dir := os.Getenv(EnvVar); dir != "" {
		return dir
	}
	wd, _ := os.Getwd()
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "fixtures", "reference")
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("reference fixtures: no go.mod above %s; set %s", wd, EnvVar)
		}
	}
}

// All returns every fixture folder; a missing or empty root fails the test with
// the place it looked.
func All(t testing.TB) []Fixture {
	t.Helper()
	root := Root(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("reference fixtures: cannot read %s (set %s to the fixtures folder): %v", root, EnvVar, err)
	}
	var out []Fixture
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatalf("reference fixture %s: %v", dir, err)
		}
		fx := Fixture{Name: e.Name(), Dir: dir}
		if err := json.Unmarshal(raw, &fx.Config); err != nil {
			t.Fatalf("reference fixture %s/config.json: %v", dir, err)
		}
		out = append(out, fx)
	}
	if len(out) == 0 {
		t.Fatalf("reference fixtures: no fixture folders in %s (set %s)", root, EnvVar)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Open opens one of the fixture's safetensors files.
func (fx Fixture) Open(t testing.TB, file string) *safetensors.File {
	t.Helper()
	f, err := safetensors.OpenMmap(filepath.Join(fx.Dir, file))
	if err != nil {
		t.Fatalf("fixture %s: %v", fx.Name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Float32 reads a float tensor or fails.
func Float32(t testing.TB, f *safetensors.File, name string) ([]float32, []int) {
	t.Helper()
	v, shape, err := f.Float32(name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return v, shape
}

// Int64 reads an integer tensor or fails.
func Int64(t testing.TB, f *safetensors.File, name string) ([]int64, []int) {
	t.Helper()
	v, shape, err := f.Int64(name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return v, shape
}

// MaxAbs is max |x|.
func MaxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

// Compare checks max|got - want| <= tol, logging the worst error and where it is.
// keep, if non-nil, selects which entries count.
func Compare(t testing.TB, name string, got, want []float32, tol float64, keep func(i int) bool) float64 {
	t.Helper()
	return CompareEach(t, name, got, want, func(int) float64 { return tol }, keep)
}

// CompareEach is Compare with a tolerance per entry; the log shows the worst
// error relative to its tolerance.
func CompareEach(t testing.TB, name string, got, want []float32, tolAt func(i int) float64, keep func(i int) bool) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", name, len(got), len(want))
		return math.Inf(1)
	}
	worst, worstRatio, tol, at := 0.0, 0.0, 0.0, -1
	for i := range want {
		if keep != nil && !keep(i) {
			continue
		}
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		r := d / tolAt(i)
		if r > worstRatio || at < 0 {
			worst, worstRatio, tol, at = d, r, tolAt(i), i
		}
	}
	msg := fmt.Sprintf("%-48s max|err| %.3g (tol %.3g)", name, worst, tol)
	if at >= 0 {
		msg += fmt.Sprintf(" at %d: got %g want %g", at, got[at], want[at])
	}
	if worstRatio > 1 {
		t.Errorf("%s: FAIL", msg)
	} else {
		t.Log(msg)
	}
	return worst
}

// OutputTol is the output/loss tolerance of the issue: 1e-4 · max(1, max|ref|).
func OutputTol(want []float32) float64 { return 1e-4 * math.Max(1, MaxAbs(want)) }

// Subdirs returns every subdirectory of a fixtures folder: $env, or
// ../shared/fixtures/<name> beside the repository. A missing or empty folder
// fails the test with the place it looked.
func Subdirs(t testing.TB, env, name string) []string {
	t.Helper()
	root := os.Getenv(env)
	if root == "" {
		root = filepath.Join(filepath.Dir(Root(t)), name)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("%s fixtures: cannot read %s (set %s): %v", name, root, env, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s fixtures: no folders in %s (set %s)", name, root, env)
	}
	sort.Strings(out)
	return out
}

// Int32s converts a fixture's int64 ids to the int32 the models take.
func Int32s(v []int64) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}
