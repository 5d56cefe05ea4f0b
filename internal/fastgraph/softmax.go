package fastgraph

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// SoftmaxLast is the softmax over the last axis of x. On the Go backend it is
// the backend's fused kernel (a float32 exp) with the gradient written from its
// output, dx = y ⊙ (v − Σⱼ vⱼ yⱼ), where GoMLX would rebuild and differentiate
// the decomposed softmax (row max, exp, sum and division, all broadcasting) in
// the backward pass. Elsewhere it is GoMLX's Softmax.
func SoftmaxLast(x *Node) *Node {
	if !Native(x.Graph()) {
		return Softmax(x, -1)
	}
	y, fused := InternalFusedOpCaller(func() *Node { return BackendFusedSoftmax(x, x.Rank()-1) },
		func() *Node { return Softmax(x, -1) }, false)
	if fused {
		setVJP(y, softmaxVJP)
	}
	return y
}

func softmaxVJP(y, v *Node) []*Node {
	_, d := lastDim(y)
	return []*Node{Mul(y, Sub(v, SpreadLast(SumLast(Mul(v, y)), d)))}
}

// GeluTanh is nn.GELU(approximate="tanh"), 0.5·z·(1 + tanh(√(2/π)·(z + 0.044715 z³))).
// Where the backend has a fused kernel (the Go backend, float32) it gives the
// value and the gradient is written from it: gelu'(z) = s + z·s·(1 − s)·2a'
// with s = σ(2a) = y/z (0.5 near z = 0) and a' = √(2/π)(1 + 3·0.044715·z²), so
// no transcendental is evaluated in the backward pass. Elsewhere it is the same
// function from graph ops.
func GeluTanh(z *Node) *Node {
	if z.DType() != dtypes.Float32 || !Native(z.Graph()) {
		return geluTanhDecomposed(z)
	}
	y, fused := InternalFusedOpCaller(func() *Node {
		return BackendFusedActivation(z, compute.ActivationConfig{Type: compute.ActivationGeluApproximate})
	}, func() *Node { return geluTanhDecomposed(z) }, false)
	if fused {
		setVJP(y, geluVJP)
	}
	return y
}

func geluVJP(y, v *Node) []*Node {
	z := y.Inputs()[0]
	g, dims := z.Graph(), z.Shape().Dimensions
	small := LessThan(Abs(z), BroadcastToDims(Scalar(g, z.DType(), 1e-20), dims...))
	s := Where(small, BroadcastToDims(Scalar(g, z.DType(), 0.5), dims...), Div(y, z))
	da := MulScalar(AddScalar(MulScalar(Mul(z, z), 3*0.044715), 1), 2*math.Sqrt(2/math.Pi))
	return []*Node{Mul(v, Add(s, Mul(Mul(Mul(z, s), OneMinus(s)), da)))}
}

// GeluTanhTrain is GeluTanh in the form whose value and gradient together cost
// least on the Go backend, for graphs that take its gradient: y = z·s with
// s = σ(u), u = z·w, w = c(1 + 0.044715 z²), c = 2√(2/π) (0.5(1 + tanh a) =
// σ(2a)), and the gradient y' = s + y(1 − s)u' with u' = c(1 + 3·0.044715 z²)
// = 3w − 2c, from the forward pass' own nodes: six elementwise ops forward
// and six backward, where the fused kernel's float64 tanh (no gradient of its
// own) left a division and a guard at z = 0 to recover s. Elsewhere it is
// GeluTanh.
func GeluTanhTrain(z *Node) *Node {
	if !Native(z.Graph()) {
		return GeluTanh(z)
	}
	const c = 2 * 0.7978845608028654 // 2√(2/π)
	w := AddScalar(MulScalar(Mul(z, z), c*0.044715), c)
	s := Logistic(Mul(z, w))
	y := Mul(z, s)
	setVJP(y, geluTrainVJP)
	return y
}

// geluTrainVJP is GeluTanhTrain's gradient. It reads s and w off the nodes
// GeluTanhTrain built: y = Mul(z, s), s = Logistic(u), u = Mul(z, w).
func geluTrainVJP(y, v *Node) []*Node {
	const c = 2 * 0.7978845608028654
	s := y.Inputs()[1]
	if s.Type() != NodeTypeLogistic || s.Inputs()[0].Type() != NodeTypeMul {
		panic(fmt.Sprintf("fastgraph: GeluTanhTrain's node %s is not z·σ(z·w)", y))
	}
	w := s.Inputs()[0].Inputs()[1]
	p := Mul(y, AddScalar(MulScalar(w, 3), -2*c))            // y·u'
	return []*Node{Mul(v, Add(Mul(s, OneMinus(p)), p)), nil} // s + y(1−s)u' = s(1 − y·u') + y·u'
}

// geluTanhDecomposed is GeluTanh from graph ops, written z·σ(2a) (the same
// function: 0.5(1 + tanh a) = σ(2a)), z³ as z·z·z rather than a Pow.
func geluTanhDecomposed(z *Node) *Node {
	cube := Mul(Mul(z, z), z)
	inner := MulScalar(Add(z, MulScalar(cube, 0.044715)), 2*math.Sqrt(2/math.Pi))
	return Mul(z, Logistic(inner))
}
