package fastgraph

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// SoftmaxLast is the softmax over the last axis of x, whose entries must be
// finite (mask with a large negative number, not −∞). On the Go backend the
// value is the backend's fused softmax kernel and the gradient is written from
// it, dx = y ⊙ (v − Σⱼ vⱼ yⱼ), where GoMLX would rebuild and differentiate the
// decomposed softmax (row max, exp, sum and division, all broadcasting) in the
// backward pass. The gradient rides on a link that is exactly zero for finite x.
func SoftmaxLast(x *Node) *Node {
	if !Native(x.Graph()) {
		return Softmax(x, -1)
	}
	_, d := lastDim(x)
	y := StopGradient(Softmax(x, -1))
	xg := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		return Mul(y, Sub(v, SpreadLast(SumLast(Mul(v, y)), d)))
	})
	return Add(y, Sub(xg, StopGradient(x)))
}
