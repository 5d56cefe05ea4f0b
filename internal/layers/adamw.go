package layers

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/optim"
)

// AdamWUpdate applies AdamW to a subset of the parameters: grads are the
// subset's entries of the ready gradients ClipAdamW returned (train updates
// the largest parameters one after another, in turn).
type AdamWUpdate func(params, grads, m, v []*Node) (newP, newM, newV []*Node)

// ClipAdamW is the training step's optimizer, clip_grad_norm_ then
// torch.optim.AdamW (optim): it returns the global norm of grads, the
// gradients ready for update, and the update.
//
// The plain form is optim.ClipByGlobalNorm (ready: the clipped gradients) and
// optim.AdamW.Update. With FoldedAdamW the clip coefficient c enters the
// moments' scalars instead of a pass of its own over every gradient:
//
//	m ← β1·m + ((1 − β1)·c)·g
//	v ← β2·v + ((1 − β2)·c²)·g²
//
// (ready: the gradients as they are). On the Go backend every elementwise op
// is a pass over its operands, and for a vocabulary-sized parameter (the tiny
// config's [50258, 512]) a pass is memory-bound: the optimizer's 16 passes per
// parameter were a third of the tiny step, and folding pays 4-7% of it
// (bench/README.md, "Round 2026-12-05 evening: the tiny step's optimizer").
// The values agree with the plain form's to float32 rounding (m is
// β1·m + (1 − β1)·g rather than torch's lerp m + (1 − β1)(g − m)).
func ClipAdamW(opt optim.AdamW, maxNorm float64, grads []*Node, scalars *Node) (norm *Node, ready []*Node, update AdamWUpdate) {
	if len(grads) == 0 || !uses(grads[0].Graph(), FoldedAdamW) {
		clipped, norm := optim.ClipByGlobalNorm(grads, maxNorm)
		return norm, clipped, func(params, grads, m, v []*Node) (newP, newM, newV []*Node) {
			return opt.Update(params, grads, m, v, scalars)
		}
	}
	norm = optim.GlobalNorm(grads)
	g := norm.Graph()
	coef := Scalar(g, norm.DType(), 1)
	if maxNorm > 0 {
		coef = Min(Div(Scalar(g, norm.DType(), maxNorm), AddScalar(norm, 1e-6)), coef)
	}
	return norm, grads, func(params, grads, m, v []*Node) (newP, newM, newV []*Node) {
		return foldedAdamW(opt, coef, params, grads, m, v, scalars)
	}
}

// foldedAdamW is optim.AdamW.Update on the unclipped gradients with the clip
// coefficient coef folded into the moments' scalars (ClipAdamW).
func foldedAdamW(opt optim.AdamW, coef *Node, params, grads, m, v []*Node, scalars *Node) (newP, newM, newV []*Node) {
	mScale := MulScalar(coef, 1-opt.Beta1)
	vScale := MulScalar(Mul(coef, coef), 1-opt.Beta2)
	sc := optim.SplitScalars(scalars)
	for i, p := range params {
		g := grads[i]
		// Scalars on the right-hand side: the Go backend's binary ops have a
		// fast path for a scalar rhs only.
		scalar := func(s *Node) *Node { return Reshape(ConvertDType(s, p.DType())) }
		mi := Add(MulScalar(m[i], opt.Beta1), Mul(g, scalar(mScale)))
		vi := Add(MulScalar(v[i], opt.Beta2), Mul(Mul(g, g), scalar(vScale)))
		newP, newM, newV = append(newP, opt.Apply(p, mi, vi, sc)), append(newM, mi), append(newV, vi)
	}
	return newP, newM, newV
}
