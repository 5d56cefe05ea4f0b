package train

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
)

// The step with the optimizer on the host (layers.HostAdamW) takes the graph
// step's values: losses, gradient norms, and the parameters and moments after
// three steps, one of them accumulated over two micro-batches, with the clip
// active and weight decay on. Both states are made as the trainer makes them
// (NewStateOn): the host steps' in shared buffers from the start.
// Both backbones, each with its embedding's gradient scattered into its
// accumulator (layers.EmbeddedRows) on the host path.
func TestHostAdamWMatchesGraphStep(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if !layers.OnBackend(be, layers.HostAdamW) {
		t.Skipf("backend %s: the host optimizer is not taken", be.String())
	}
	for _, cfg := range []backbone.Config{
		{Arch: backbone.DiT, Vocab: 61, Hidden: 32, Heads: 4, Blocks: 2, Cond: 16, Length: 12, MaskIndex: 60},
		backbone.Config{Arch: backbone.DiMamba, Vocab: 61, Hidden: 32, Blocks: 2, Cond: 16, Length: 12, MaskIndex: 60}.WithMambaDefaults(),
	} {
		t.Run(string(cfg.Arch), func(t *testing.T) { hostMatchesGraph(t, be, cfg) })
	}
}

func hostMatchesGraph(t *testing.T, be compute.Backend, cfg backbone.Config) {
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	batches := make([]diffusion.Batch, 4)
	for i := range batches {
		batches[i] = syntheticBatch(m, 3, cfg.Length, rng)
	}
	opt := optim.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	run := func(host bool) (*State, []StepResult) {
		if !host {
			layers.SetForms(string(layers.HostAdamW))
			defer layers.SetForms("")
		}
		step, err := NewStep(be, m, opt, optim.ConstantWarmup{Peak: opt.LR}, 0.5, w.RotaryInvFreqOrDefault())
		if err != nil {
			t.Fatal(err)
		}
		st, err := NewStateOn(be, w, 1, dtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		var res []StepResult
		for i := 0; i < 2; i++ {
			r, err := step.Run(st, batches[i])
			if err != nil {
				t.Fatal(err)
			}
			res = append(res, r)
		}
		seeds := []*tensors.Tensor{mustRNG(t, 5), mustRNG(t, 6)}
		r, err := step.RunAccum(st, batches[2:], seeds)
		if err != nil {
			t.Fatal(err)
		}
		return st, append(res, r)
	}
	hostSt, hostRes := run(true)
	graphSt, graphRes := run(false)
	if !hostSt.Params[0].IsShared() || graphSt.Params[0].IsShared() {
		t.Fatalf("shared state: host %v, graph %v", hostSt.Params[0].IsShared(), graphSt.Params[0].IsShared())
	}
	for i := range hostRes {
		if graphRes[i].GradNorm <= 0.5 {
			t.Fatalf("step %d: gradient norm %g, the clip (0.5) not exercised", i, graphRes[i].GradNorm)
		}
		for _, c := range []struct {
			what      string
			got, want float32
		}{{"loss", hostRes[i].Loss, graphRes[i].Loss}, {"gradient norm", hostRes[i].GradNorm, graphRes[i].GradNorm}} {
			if d := math.Abs(float64(c.got - c.want)); d > 1e-5*math.Abs(float64(c.want)) {
				t.Errorf("step %d %s: host %g, graph %g", i, c.what, c.got, c.want)
			}
		}
	}
	// Parameters move by lr·m̂/(√v̂ + eps), which divides float32 rounding in
	// a small gradient by its own small size: they are compared against lr,
	// the moments (smooth in the gradients) against their largest values.
	for g, pair := range [][2][]*tensors.Tensor{{hostSt.Params, graphSt.Params}, {hostSt.M, graphSt.M}, {hostSt.V, graphSt.V}} {
		worst := 0.0
		for i := range pair[0] {
			got, want := tensors.MustCopyFlatData[float32](pair[0][i]), tensors.MustCopyFlatData[float32](pair[1][i])
			scale := 0.0
			for _, v := range want {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			if g == 0 {
				scale = opt.LR
			}
			for j := range want {
				worst = math.Max(worst, math.Abs(float64(got[j]-want[j]))/math.Max(scale, 1e-30))
			}
		}
		limit := 1e-4
		if g == 0 {
			limit = 1e-2 // weight decay alone moves a parameter by 2% of lr here
		}
		if worst > limit {
			t.Errorf("state group %d (parameters, m, v): host and graph differ by %.3g of the scale", g, worst)
		}
	}
}

func mustRNG(t *testing.T, seed int64) *tensors.Tensor {
	t.Helper()
	r, err := RNGStateFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// NewStateOn makes NewState's values, in the backend's shared buffers where
// the step takes the host optimizer, and host tensors where it does not; a
// checkpoint's moments (newStateOn) are copied as they are; a weight or a
// moment of the wrong size is refused with its name.
func TestNewStateOn(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 61, Hidden: 32, Heads: 4, Blocks: 1, Cond: 16, Length: 12, MaskIndex: 60}
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewState(w, 5, dtypes.Float32)
	if err != nil {
		t.Fatal(err)
	}
	same := func(t *testing.T, got []*tensors.Tensor, want func(i int) []float32, shared bool) {
		t.Helper()
		for i, x := range got {
			if x.IsShared() != shared {
				t.Errorf("tensor %d shared %v, want %v", i, x.IsShared(), shared)
			}
			if !slices.Equal(tensors.MustCopyFlatData[float32](x), want(i)) {
				t.Fatalf("tensor %d differs", i)
			}
		}
	}
	for _, host := range []bool{true, false} {
		t.Run(fmt.Sprintf("host optimizer %v", host), func(t *testing.T) {
			if !host {
				layers.SetForms(string(layers.HostAdamW))
				defer layers.SetForms("")
			}
			shared := host && be.HasSharedBuffers() && layers.OnBackend(be, layers.HostAdamW)
			got, err := NewStateOn(be, w, 5, dtypes.Float32)
			if err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2][]*tensors.Tensor{{got.Params, want.Params}, {got.M, want.M}, {got.V, want.V}} {
				same(t, pair[0], func(i int) []float32 { return tensors.MustCopyFlatData[float32](pair[1][i]) }, shared)
			}
			if !slices.Equal(tensors.MustCopyFlatData[uint64](got.RNG), tensors.MustCopyFlatData[uint64](want.RNG)) {
				t.Error("RNG state differs")
			}
			// A checkpoint's moments: each moment a distinct function of the weights.
			m, v := map[string][]float32{}, map[string][]float32{}
			for name, x := range w.Data {
				m[name], v[name] = make([]float32, len(x)), make([]float32, len(x))
				for j := range x {
					m[name][j], v[name][j] = x[j]*2, x[j]*x[j]
				}
			}
			ck, err := newStateOn(be, cfg, w.Data, m, v, 7, 5)
			if err != nil {
				t.Fatal(err)
			}
			specs := cfg.Specs()
			same(t, ck.M, func(i int) []float32 { return m[specs[i].Name] }, shared)
			same(t, ck.V, func(i int) []float32 { return v[specs[i].Name] }, shared)
			if ck.Step != 7 {
				t.Errorf("step %d, want 7", ck.Step)
			}
			name := specs[1].Name
			short := maps.Clone(v)
			short[name] = short[name][:1]
			if _, err := newStateOn(be, cfg, w.Data, m, short, 7, 5); err == nil || !strings.Contains(err.Error(), "second moment of "+name) {
				t.Errorf("a short second moment of %s: error %v, want one naming it", name, err)
			}
		})
	}
}
