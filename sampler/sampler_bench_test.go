package sampler

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
)

// BenchmarkSamplers reports wall time and denoiser evaluations (NFE per row) of
// ddpm, the reference's ddpm_cache and the per-row cache at batch 1 and 8 with
// 1000 steps ($MDLM_BENCH_SAMPLER_STEPS), on a small DiT (D 128, 4 heads, 2 blocks, V 1024, L 128) with random
// weights on the configured backend; MDLM_BENCH_SAMPLER_MODEL=small takes the
// paper's small DiT with the GPT-2 vocabulary at L 1024 (the GPU figure: 8 x 1024).
// MDLM_BENCH_SAMPLER_DRAWS=float64 draws in float64 (default: float32, the
// reference's), MDLM_BENCH_SAMPLER_TOP_P=P adds top-p and
// MDLM_BENCH_SAMPLER_REMASKING=low-confidence confidence-ordered unmasking.
func BenchmarkSamplers(b *testing.B) {
	be, err := backend.Shared()
	if err != nil {
		b.Fatal(err)
	}
	steps := 1000
	if v, err := strconv.Atoi(os.Getenv("MDLM_BENCH_SAMPLER_STEPS")); err == nil && v > 0 {
		steps = v
	}
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 1024, Hidden: 128, Heads: 4, Blocks: 2, Cond: 64, Length: 128, MaskIndex: 1023}
	if name := os.Getenv("MDLM_BENCH_SAMPLER_MODEL"); name != "" {
		if cfg, err = backbone.Preset(name, backbone.DiT, 50258, 1024); err != nil {
			b.Fatal(err)
		}
		cfg.Dropout = 0
	}
	L := cfg.Length
	w, err := backbone.NewWeights(cfg, 1)
	if err != nil {
		b.Fatal(err)
	}
	for i := range w.Data["output_layer.linear.weight"] { // a non-uniform denoiser
		w.Data["output_layer.linear.weight"][i] = float32((i*7919)%13-6) * 0.05
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
	for _, B := range []int{1, 8} {
		for _, kind := range []Kind{DDPM, DDPMCache, RowCache} {
			b.Run(fmt.Sprintf("%s/B%d", kind, B), func(b *testing.B) {
				var nfe int
				for i := 0; i < b.N; i++ {
					s, err := New(be, m, w, int64(i), nil)
					if err != nil {
						b.Fatal(err)
					}
					o := Options{Kind: kind, Steps: steps, Eps: 1e-5, NoiseRemoval: true, Draws: Precision(os.Getenv("MDLM_BENCH_SAMPLER_DRAWS"))}
					if os.Getenv("MDLM_BENCH_SAMPLER_REMASKING") == string(LowConfidence) {
						o.Remasking = LowConfidence
					}
					if p, err := strconv.ParseFloat(os.Getenv("MDLM_BENCH_SAMPLER_TOP_P"), 64); err == nil {
						o.TopP = p
					}
					r, err := s.Sample(context.Background(), o, masks(B*L, cfg.MaskIndex), B, L, nil)
					if err != nil {
						b.Fatal(err)
					}
					for _, n := range r.NFE {
						nfe += n
					}
				}
				b.ReportMetric(float64(nfe)/float64(b.N*B), "NFE/row")
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/batch")
			})
		}
	}
}
