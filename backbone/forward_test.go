package backbone

import (
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/internal/reffix"
)

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureConfig(fx reffix.Fixture, arch Arch) Config {
	c := fx.Config
	return Config{Arch: arch, Vocab: c.Vocab, Hidden: c.Hidden, Heads: c.Heads, Blocks: c.Blocks,
		Cond: c.Cond, Length: c.Length, MaskIndex: c.MaskIndex}
}

// runForward evaluates Forward on host inputs and returns the flat output.
func runForward(t testing.TB, w *Weights, indices []int32, B, L int, sigma []float32) []float32 {
	t.Helper()
	cfg := w.Config
	n := len(cfg.Specs())
	exec, err := NewExec(testBackend(t), func(g *Graph, in []*Node) *Node {
		p := ParamsFromNodes(cfg, in[:n])
		return Forward(cfg, p, w.RotaryInvFreqOrDefault(), in[n], in[n+1], layers.Inference, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	args := []any{}
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(indices, B, L), tensors.FromFlatDataAndDimensions(sigma, B))
	out, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func TestReferenceBackbones(t *testing.T) {
	for _, fx := range reffix.All(t) {
		t.Run(fx.Name, func(t *testing.T) {
			B, L := fx.Config.Batch, fx.Config.Length
			exp := fx.Open(t, "expected_mdlm.safetensors")
			xt, _ := reffix.Int64(t, exp, "mdlm/xt")
			sigma, _ := reffix.Float32(t, exp, "mdlm/sigma")

			dit, err := LoadWeights(fx.Open(t, "dit.safetensors"), fixtureConfig(fx, DiT))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name  string
				sigma []float32
			}{{"mdlm/backbone_logits_sigma0", make([]float32, B)}, {"mdlm/backbone_logits_sigma", sigma}} {
				want, _ := reffix.Float32(t, exp, c.name)
				got := runForward(t, dit, reffix.Int32s(xt), B, L, c.sigma)
				reffix.Compare(t, c.name, got, want, reffix.OutputTol(want), nil)
			}

			ar, err := LoadWeights(fx.Open(t, "ar.safetensors"), fixtureConfig(fx, AR))
			if err != nil {
				t.Fatal(err)
			}
			x0, _ := reffix.Int64(t, exp, "x0")
			in := make([]int32, 0, B*(L-1))
			for b := 0; b < B; b++ {
				in = append(in, reffix.Int32s(x0[b*L:b*L+L-1])...)
			}
			want, _ := reffix.Float32(t, fx.Open(t, "expected_ar.safetensors"), "ar/logprobs")
			got := runForward(t, ar, in, B, L-1, make([]float32, B))
			reffix.Compare(t, "ar/logprobs", got, want, reffix.OutputTol(want), nil)
		})
	}
}
