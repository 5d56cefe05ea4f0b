package train

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/optim"
)

// syntheticBatch draws a MDLM training batch the way the trainer will: antithetic
// t with the 1e-3 floor, loglinear σ, masking with probability 1 − e^{−σ}.
func syntheticBatch(m diffusion.Model, B, L int, rng *rand.Rand) diffusion.Batch {
	x0 := make([]int32, B*L)
	for i := range x0 {
		x0[i] = int32(rng.IntN(m.Backbone.Vocab - 1))
	}
	u := make([]float32, B)
	for i := range u {
		u[i] = rng.Float32()
	}
	t := diffusion.SampleT(u, true, 1e-3)
	sigma, dsigma := diffusion.SigmaDSigma(m.Schedule, t)
	um := make([]float32, B*L)
	for i := range um {
		um[i] = rng.Float32()
	}
	mask := make([]float32, B*L)
	for i := range mask {
		mask[i] = 1
	}
	return diffusion.Batch{B: B, L: L, X0: x0, XT: diffusion.Mask(x0, um, sigma, int32(m.Backbone.MaskIndex)),
		T: t, Sigma: sigma, DSigma: dsigma, TokenMask: mask}
}

// BenchmarkTrainStep times one full MDLM step (forward, SUBS loss, backward,
// clip, AdamW) on the configured backend ($GOMLX_BACKEND, default the pure-Go
// CPU backend). "fixture" is the reference fixture's size; "tiny" is the
// reference's tiny DiT (D 512, 8 heads, 8 blocks) with the GPT-2 vocabulary;
// "small" is the paper's model: 1 x 128 on the CPU backend, 16 x 1024 on a GPU
// in float32 and in bf16 mixed precision (the reference's setting: 106,216
// tokens/s, 0.154 s a step on an H100).
func BenchmarkTrainStep(b *testing.B) {
	cases := []struct {
		name            string
		cfg             backbone.Config
		batch, length   int
		skipOnGoBackend bool
		bf16            bool
	}{
		{"fixture", backbone.Config{Arch: backbone.DiT, Vocab: 512, Hidden: 64, Heads: 4, Blocks: 2, Cond: 32, MaskIndex: 511}, 4, 32, false, false},
		{"tiny", mustPreset("tiny"), 2, 128, false, false},
		{"small", mustPreset("small"), 1, 128, os.Getenv("MDLM_BENCH_SMALL_CPU") == "", false},
		{"small", mustPreset("small"), 16, 1024, true, false},
		{"small-bf16", mustPreset("small"), 16, 1024, true, true},
	}
	be, err := backend.Shared()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/B%dxL%d", c.name, c.batch, c.length), func(b *testing.B) {
			if c.skipOnGoBackend && strings.Contains(be.Name(), "Go") {
				b.Skip("GPU-size case (or set MDLM_BENCH_SMALL_CPU=1 for small at 1 x 128 on CPU: ~24 GB peak RSS)")
			}
			c.cfg.Length = c.length
			m := diffusion.Model{Backbone: c.cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
			w, err := backbone.NewWeights(c.cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			step, err := NewStep(be, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 3e-4, Warmup: 10}, 1, w.RotaryInvFreqOrDefault())
			if err != nil {
				b.Fatal(err)
			}
			if c.bf16 {
				step.MixedPrecision = dtypes.BFloat16
			}
			st, err := NewState(w, 1, dtypes.Float32)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			batch := syntheticBatch(m, c.batch, c.length, rng)
			if _, err := step.Run(st, batch); err != nil { // compile outside the timing
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := step.Run(st, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.batch*c.length*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

func mustPreset(name string) backbone.Config {
	c, err := backbone.Preset(name, backbone.DiT, 50258, 1024)
	if err != nil {
		panic(err)
	}
	c.Dropout = 0.1
	return c
}
