package sampler

import (
	"context"
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
)

// maskHeavyD3PM is a d3pm model whose denoiser puts nearly all its mass on
// [MASK] (logit bias 60), with or without subs masking.
func maskHeavyD3PM(t *testing.T, L int, subsMasking bool) (diffusion.Model, *backbone.Weights) {
	t.Helper()
	m, w := tinyModel(t, L)
	w.Data["output_layer.linear.bias"][m.Backbone.MaskIndex] = 60
	m.Param, m.T, m.TimeConditioning, m.SubsMasking = diffusion.D3PM, 1000, true, subsMasking
	return m, w
}

// denoiserOutputs runs the three d3pm denoiser graphs on an all-[MASK] batch:
// denoiserProbs, temperedProbs at temperature 1e7 (which would lift a −1e6
// logit to −0.1) and denoiserArgmax.
func denoiserOutputs(t *testing.T, m diffusion.Model, w *backbone.Weights, B, L int) (probs, tempered []float32, argmax []int32) {
	t.Helper()
	b, _ := backend.Shared()
	n := len(m.Backbone.Specs())
	exec, err := NewExec(b, func(in []*Node) []*Node {
		p := backbone.ParamsFromNodes(m.Backbone, in[:n])
		x, cond := in[n], in[n+1]
		inv := w.RotaryInvFreqOrDefault()
		return []*Node{denoiserProbs(m, p, inv, x, cond), temperedProbs(m, p, inv, x, cond, 1e7),
			denoiserArgmax(m, p, inv, x, cond)}
	})
	if err != nil {
		t.Fatal(err)
	}
	args := []any{}
	for _, p := range w.Tensors() {
		args = append(args, p)
	}
	sigma := make([]float32, B)
	for i := range sigma {
		sigma[i] = 0.5
	}
	out, err := exec.Call(append(args, tensors.FromFlatDataAndDimensions(masks(B*L, m.Backbone.MaskIndex), B, L),
		tensors.FromFlatDataAndDimensions(sigma, B))...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[int32](out[2])
}

// A d3pm model trained with --subs-masking samples through its
// parameterization (diffusion.py: _d3pm_parameterization): the [MASK] column
// of the denoiser's distribution is exactly 0, even where the network favours
// [MASK] and at any temperature, and the noise-removal argmax never picks it.
// Without subs masking the same network's [MASK] keeps its mass.
func TestD3PMSubsMaskingZeroesMask(t *testing.T) {
	const B, L = 2, 6
	for _, subs := range []bool{true, false} {
		m, w := maskHeavyD3PM(t, L, subs)
		V, mask := m.Backbone.Vocab, m.Backbone.MaskIndex
		probs, tempered, argmax := denoiserOutputs(t, m, w, B, L)
		for r := 0; r < B*L; r++ {
			for name, pr := range map[string][]float32{"denoiserProbs": probs, "temperedProbs": tempered} {
				row := pr[r*V : (r+1)*V]
				sum := 0.0
				for _, v := range row {
					sum += float64(v)
				}
				// temperedProbs may leave the weights unnormalised once [MASK] is
				// zeroed (the draw takes unnormalised weights); the plain
				// denoiser's rows are distributions.
				if (name == "denoiserProbs" && math.Abs(sum-1) > 1e-4) || sum > 1+1e-4 || !(sum > 0) {
					t.Fatalf("subs_masking=%v %s row %d sums to %g", subs, name, r, sum)
				}
				if subs && row[mask] != 0 {
					t.Fatalf("subs_masking: %s row %d gives [MASK] probability %g, want 0", name, r, row[mask])
				}
			}
			if subs && argmax[r] == int32(mask) {
				t.Fatalf("subs_masking: denoiserArgmax picked [MASK] at row %d", r)
			}
			if !subs && (probs[r*V+mask] < 0.99 || argmax[r] != int32(mask)) {
				t.Fatalf("without subs masking: [MASK] probability %g, argmax %d; want ≈1 and %d", probs[r*V+mask], argmax[r], mask)
			}
		}
	}
}

// End to end, such a model's ddpm samples never hold [MASK] after the final
// step, where the same network without subs masking keeps every token masked
// (TestD3PMSamplesWithItsOwnProbabilities).
func TestD3PMSubsMaskingSamplesNoMask(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	m, w := maskHeavyD3PM(t, L, true)
	for _, kind := range []Kind{DDPM, DDPMCache} {
		s, err := New(b, m, w, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Sample(context.Background(), Options{Kind: kind, Steps: 10, Eps: 1e-5, NoiseRemoval: true}, masks(B*L, m.Backbone.MaskIndex), B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range r.Tokens {
			if x == int32(m.Backbone.MaskIndex) {
				t.Fatalf("%s: token %d is [MASK] in %v", kind, i, r.Tokens)
			}
		}
	}
}
