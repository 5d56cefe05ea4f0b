package layers

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/optim"
)

// clipAdamWOutputs runs ClipAdamW on two parameters ([3, 4] and [5]) and
// returns the new parameters, moments and the norm, flattened in that order.
func clipAdamWOutputs(t *testing.T, opt optim.AdamW, maxNorm float64, in []*tensors.Tensor, scalars *tensors.Tensor) [][]float32 {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	out := MustExecOnceN(b, func(ns []*Node) []*Node {
		params, grads, m, v := ns[0:2], ns[2:4], ns[4:6], ns[6:8]
		norm, ready, update := ClipAdamW(opt, maxNorm, grads, ns[8])
		np, nm, nv := update(params, ready, m, v)
		return append(append(append(np, nm...), nv...), norm)
	}, append(append([]any{}, anys(in)...), scalars)...)
	flat := make([][]float32, len(out))
	for i, o := range out {
		flat[i] = tensors.MustCopyFlatData[float32](o)
	}
	return flat
}

func anys(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

// FoldedAdamW (the clip coefficient folded into the moments' scalars) gives
// the plain form's parameters, moments and norm to float32 rounding, with the
// clip active (a gradient norm far above maxNorm, where a coefficient applied
// wrongly to m or v shows), inactive, and turned off, with and without weight
// decay; with the form off ClipAdamW is optim's clip and update exactly.
func TestClipAdamWFoldedMatchesPlain(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := [][]int{{3, 4}, {5}}
	tests := []struct {
		name       string
		gradScale  float32
		maxNorm    float64
		decay      float64
		wantClipUp bool
	}{
		{"clipped", 50, 1, 0, true},
		{"not clipped", 0.01, 1, 0, false},
		{"clip off", 50, 0, 0, false},
		{"weight decay", 50, 1, 0.1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := optim.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: tc.decay}
			var in []*tensors.Tensor
			for k := range 8 {
				x := randomTensor(rng, shapes[k%2]...)
				v := tensors.MustCopyFlatData[float32](x)
				for i := range v {
					switch k / 2 {
					case 1:
						v[i] *= tc.gradScale
					case 3:
						v[i] *= v[i] * 1e-3 // second moments are not negative
					}
				}
				in = append(in, tensors.FromFlatDataAndDimensions(v, shapes[k%2]...))
			}
			scalars := tensors.FromFlatDataAndDimensions(opt.Scalars(3, opt.LR), optim.NumScalars)

			SetForms(string(FoldedAdamW))
			plain := clipAdamWOutputs(t, opt, tc.maxNorm, in, scalars)
			SetForms("")
			folded := clipAdamWOutputs(t, opt, tc.maxNorm, in, scalars)
			if clipped := plain[6][0] > float32(tc.maxNorm); clipped != tc.wantClipUp && tc.maxNorm > 0 {
				t.Fatalf("norm %g against maxNorm %g: the case does not test what it says", plain[6][0], tc.maxNorm)
			}
			for i, what := range []string{"p0", "p1", "m0", "m1", "v0", "v1", "norm"} {
				near(t, what, folded[i], plain[i], 1e-6)
			}

			// The plain form is optim's clip and update, bit for bit.
			b, err := backend.Shared()
			if err != nil {
				t.Fatal(err)
			}
			SetForms(string(FoldedAdamW))
			defer SetForms("")
			ref := MustExecOnceN(b, func(ns []*Node) []*Node {
				grads, norm := optim.ClipByGlobalNorm(ns[2:4], tc.maxNorm)
				np, nm, nv := opt.Update(ns[0:2], grads, ns[4:6], ns[6:8], ns[8])
				return append(append(append(np, nm...), nv...), norm)
			}, append(append([]any{}, anys(in)...), scalars)...)
			for i := range ref {
				want := tensors.MustCopyFlatData[float32](ref[i])
				for j := range want {
					if plain[i][j] != want[j] {
						t.Fatalf("plain form output %d[%d] = %g, optim's %g", i, j, plain[i][j], want[j])
					}
				}
			}
		})
	}
}
