package layers

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"

	"github.com/mdlm-go/mdlm/backend"
)

// geluTanhGrad is d/dz of 0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³))) in float64.
func geluTanhGrad(z float64) float64 {
	c := math.Sqrt(2 / math.Pi)
	u := c * (z + 0.044715*z*z*z)
	t := math.Tanh(u)
	return 0.5*(1+t) + 0.5*z*(1-t*t)*c*(1+3*0.044715*z*z)
}

// TestUpstreamGeluApproximateGradient is the minimal reproduction of the
// GoMLX v0.28.16 / compute v0.1.14 Go-backend bug recorded in bench/README.md
// ("Upstream"): the gradient of activation.GeluApproximate (FusedActivation's
// fused VJP) against the closed form. It logs the worst error per dtype
// rather than failing, as the bug is upstream; GeluTanh in Training mode
// does not use that gradient (TestGeluTanhTrainingGradient).
func TestUpstreamGeluApproximateGradient(t *testing.T) {
	b, _ := backend.Shared()
	zs := []float64{-3, -1.5, -0.7, -0.1, 0, 0.05, 0.3, 0.9, 1.7, 2.5, 4}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		out := MustExecOnce(b, func(x *Node) *Node {
			return Gradient(ReduceAllSum(activation.GeluApproximate(x)), x)[0]
		}, tensors.FromFlatDataAndDimensions(zs, len(zs)))
		if dt == dtypes.Float32 {
			f := make([]float32, len(zs))
			for i, z := range zs {
				f[i] = float32(z)
			}
			out = MustExecOnce(b, func(x *Node) *Node {
				return Gradient(ReduceAllSum(activation.GeluApproximate(x)), x)[0]
			}, tensors.FromFlatDataAndDimensions(f, len(f)))
		}
		worst := 0.0
		for i, z := range zs {
			var got float64
			if dt == dtypes.Float32 {
				got = float64(tensors.MustCopyFlatData[float32](out)[i])
			} else {
				got = tensors.MustCopyFlatData[float64](out)[i]
			}
			worst = math.Max(worst, math.Abs(got-geluTanhGrad(z)))
		}
		t.Logf("backend %s, %s: activation.GeluApproximate's gradient, worst |error| %.3g", b.String(), dt, worst)
	}
}

// GeluTanh's training gradient is the closed form's, in float32 and float64.
func TestGeluTanhTrainingGradient(t *testing.T) {
	b, _ := backend.Shared()
	zs := []float64{-3, -1.5, -0.7, -0.1, 0, 0.05, 0.3, 0.9, 1.7, 2.5, 4}
	out := MustExecOnce(b, func(x *Node) *Node {
		return Gradient(ReduceAllSum(GeluTanh(Training, x)), x)[0]
	}, tensors.FromFlatDataAndDimensions(zs, len(zs)))
	for i, z := range zs {
		if got, want := tensors.MustCopyFlatData[float64](out)[i], geluTanhGrad(z); math.Abs(got-want) > 1e-12 {
			t.Fatalf("gelu'(%g) = %g, want %g", z, got, want)
		}
	}
}
