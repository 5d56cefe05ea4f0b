package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
)

// TestNativeFormsMatchGenericGradients checks the Go backend's graph forms
// (internal/layers: products' gradients in the matmul's layouts, adaLN spread
// over positions as a product, the training softmax's gradient)
// against the plain graphs XLA runs, on the training loss and every
// parameter's gradient, tightly: each gradient to 2e-5 of its own largest
// magnitude, so a wrong gradient in a parameter with small gradients (which the
// reference fixtures' tolerance, relative to the largest gradient, could let
// through) fails here.
func TestNativeFormsMatchGenericGradients(t *testing.T) {
	dit := backbone.Config{Arch: backbone.DiT, Vocab: 61, Hidden: 32, Heads: 4, Blocks: 2, Cond: 16, Length: 12, MaskIndex: 60}
	ar := dit
	ar.Arch = backbone.AR
	mamba := backbone.Config{Arch: backbone.DiMamba, Vocab: 61, Hidden: 32, Blocks: 2, Cond: 16, Length: 12, MaskIndex: 60}.WithMambaDefaults()
	sched := diffusion.LogLinear{Eps: diffusion.LogLinearEps}
	cases := []struct {
		name string
		m    diffusion.Model
	}{
		{"DiT SUBS", diffusion.Model{Backbone: dit, Param: diffusion.SUBS, Schedule: sched}},
		{"DiT D3PM", diffusion.Model{Backbone: dit, Param: diffusion.D3PM, Schedule: sched, T: 1000}},
		{"AR", diffusion.Model{Backbone: ar, Param: diffusion.ARP}},
		{"DiMamba SUBS", diffusion.Model{Backbone: mamba, Param: diffusion.SUBS, Schedule: sched}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := backbone.NewWeights(c.m.Backbone, 3)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for name, v := range w.Data { // zero-initialised layers get values, so every gradient is exercised
				if strings.Contains(name, "adaLN") || strings.HasPrefix(name, "output_layer.linear") || name == "model.lm_head.weight" {
					for i := range v {
						v[i] = float32(rng.NormFloat64() * 0.05)
					}
				}
			}
			B, L := 5, c.m.Backbone.Length
			x0 := make([]int32, B*L)
			for i := range x0 {
				x0[i] = int32(rng.IntN(c.m.Backbone.Vocab - 1))
			}
			batch := diffusion.Batch{B: B, L: L, X0: x0, TokenMask: make([]float32, B*L)}
			for i := range batch.TokenMask {
				batch.TokenMask[i] = 1
			}
			if c.m.Param != diffusion.ARP {
				batch.XT, batch.T, batch.Sigma, batch.DSigma = diffusion.NoiseBatch(c.m, x0, B, L, rng)
			}
			native := lossAndGrads(t, c.m, w, batch)
			restore := layers.UseGenericForms()
			generic := lossAndGrads(t, c.m, w, batch)
			restore()
			specs := c.m.Backbone.Specs()
			for i := range generic {
				name := "loss"
				if i > 0 {
					name = specs[i-1].Name
				}
				scale := 0.0
				for _, v := range generic[i] {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for j := range generic[i] {
					if d := math.Abs(float64(native[i][j] - generic[i][j])); !(d <= 2e-5*math.Max(scale, 1e-30)) {
						t.Fatalf("%s[%d]: native forms %g, generic %g (largest magnitude %g)", name, j, native[i][j], generic[i][j], scale)
					}
				}
			}
		})
	}
}

// lossAndGrads returns the step's loss and every parameter's gradient.
func lossAndGrads(t *testing.T, m diffusion.Model, w *backbone.Weights, batch diffusion.Batch) [][]float32 {
	t.Helper()
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	step, err := NewStep(be, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 1e-3}, 1, w.RotaryInvFreqOrDefault())
	if err != nil {
		t.Fatal(err)
	}
	n := len(m.Backbone.Specs())
	exec := MustNewExec(be, func(g *Graph, in []*Node) []*Node {
		p := backbone.ParamsFromNodes(m.Backbone, in[:n])
		// A Dropout of rate 0: the identity, but the graph is built for training
		// (the forms chosen when a gradient is taken).
		loss := step.Loss(p, in[n], in[n+1], in[n+2], in[n+3], in[n+4], in[n+5], &backbone.Dropout{})
		return append([]*Node{loss}, Gradient(loss, in[:n]...)...)
	})
	args := []any{}
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	args = append(args, batchArgs(batch)...)
	out, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(out))
	for i, o := range out {
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}
