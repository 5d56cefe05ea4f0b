package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/optim"
)

func concat(a, b diffusion.Batch) diffusion.Batch {
	return diffusion.Batch{B: a.B + b.B, L: a.L, X0: append(append([]int32{}, a.X0...), b.X0...), XT: append(append([]int32{}, a.XT...), b.XT...),
		T: append(append([]float32{}, a.T...), b.T...), Sigma: append(append([]float32{}, a.Sigma...), b.Sigma...),
		DSigma: append(append([]float32{}, a.DSigma...), b.DSigma...), TokenMask: append(append([]float32{}, a.TokenMask...), b.TokenMask...)}
}

// Two accumulated micro-batches give the update of one step on their union.
func TestGradientAccumulationMatchesFullBatch(t *testing.T) {
	be, _ := backend.Shared()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 40, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 8, MaskIndex: 39}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
	w, _ := backbone.NewWeights(cfg, 2)
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32(i%5-2) * 0.1
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b1, b2 := syntheticBatch(m, 2, 8, rng), syntheticBatch(m, 2, 8, rng)
	run := func(accum bool) []float32 {
		s, err := NewStep(be, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 1e-3}, 1, w.RotaryInvFreqOrDefault())
		if err != nil {
			t.Fatal(err)
		}
		st, _ := NewState(w, 1, dtypes.Float32)
		r1, _ := RNGStateFromSeed(1)
		r2, _ := RNGStateFromSeed(2)
		var res StepResult
		if accum {
			res, err = s.RunAccum(st, []diffusion.Batch{b1, b2}, []*tensors.Tensor{r1, r2})
		} else {
			st.RNG = r1
			res, err = s.Run(st, concat(b1, b2))
		}
		if err != nil {
			t.Fatal(err)
		}
		var flat []float32
		for _, p := range st.Params {
			v, _ := backbone.Float32s(p)
			flat = append(flat, v...)
		}
		return append(flat, res.Loss, res.GradNorm)
	}
	a, f := run(true), run(false)
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-f[i])))
	}
	if worst > 2e-6 {
		t.Errorf("accumulated vs full batch differ by %g (loss %g vs %g)", worst, a[len(a)-2], f[len(f)-2])
	}
}
