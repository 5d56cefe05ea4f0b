package diffusion

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
)

// The training path (zero masking folded into the bias, gather + log-sum-exp,
// masked select) equals the literal SUBS formulas (diffusion.py:
// _subs_parameterization, _forward_pass_diffusion), and the D3PM path
// equals D3PMLogProbs, on random logits.
func TestFastPathsMatchLiteralFormulas(t *testing.T) {
	b, _ := backend.Shared()
	const B, L, V, mask = 3, 5, 11, 10
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, B*L*V)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	x0, xt := make([]int32, B*L), make([]int32, B*L)
	for i := range x0 {
		x0[i] = int32(rng.IntN(V - 1))
		xt[i] = x0[i]
		if rng.Float64() < 0.5 {
			xt[i] = mask
		}
	}
	sigma, dsigma := []float32{0.3, 1.1, 4}, []float32{1.5, 2.5, 40}
	out := MustExecOnceN(b, func(lg, bias, x0n, xtn, s, ds *Node) []*Node {
		// literal: logits + (−1e6 at mask), log-softmax, carry-over, −logp[x0]·σ'/expm1(σ)
		literal := SUBSLoss(SUBSLogProbs(lg, xtn, mask), x0n, s, ds)
		// fast: the bump goes into a bias vector added to zero logits
		zm := WithZeroMasking(map[string]*Node{"output_layer.linear.bias": bias}, mask)["output_layer.linear.bias"]
		fastLogits := Add(lg, Reshape(zm, 1, 1, V))
		lp0, _ := SUBSTokenLogProbs(fastLogits, x0n, mask)
		fast := SUBSLossAt(lp0, xtn, s, ds, mask)
		// D3PM: plain log-softmax picked at x0 vs the gather path
		d3Literal := Pick(D3PMLogProbs(lg, mask, false), x0n)
		d3Fast, _ := SUBSTokenLogProbs(lg, x0n, mask)
		return []*Node{literal, fast, d3Literal, d3Fast}
	}, tensors.FromFlatDataAndDimensions(logits, B, L, V), tensors.FromShape(shapes.Make(dtypes.Float32, V)),
		tensors.FromFlatDataAndDimensions(x0, B, L), tensors.FromFlatDataAndDimensions(xt, B, L),
		tensors.FromFlatDataAndDimensions(sigma, B), tensors.FromFlatDataAndDimensions(dsigma, B))
	for pair := 0; pair < 2; pair++ {
		a := tensors.MustCopyFlatData[float32](out[2*pair])
		f := tensors.MustCopyFlatData[float32](out[2*pair+1])
		for i := range a {
			if math.Abs(float64(a[i]-f[i])) > 1e-5*math.Max(1, math.Abs(float64(a[i]))) {
				t.Fatalf("pair %d entry %d: literal %g, fast %g", pair, i, a[i], f[i])
			}
		}
	}
}
