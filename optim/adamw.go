// Package optim holds AdamW exactly as torch.optim.AdamW computes it, clipping by
// the global gradient norm as torch.nn.utils.clip_grad_norm_ does (GoMLX v0.28.2
// has no global-norm clip), and the learning-rate schedules of the reference's
// configs/lr_scheduler (constant_warmup, cosine_decay_warmup).
//
// Step-dependent scalars (bias corrections, step size) are computed on the host in
// float64, as torch does in Python, and enter the graph as one small vector, so a
// compiled step serves every step number.
package optim

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// AdamW hyperparameters (torch.optim.AdamW arguments).
type AdamW struct {
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
}

// DefaultAdamW is the reference optimizer (configs/config.yaml: lr 3e-4,
// betas 0.9/0.999, eps 1e-8, weight decay 0).
func DefaultAdamW() AdamW { return AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Validate names the bad field.
func (a AdamW) Validate() error {
	switch {
	case a.LR < 0:
		return fmt.Errorf("adamw: lr %g must be >= 0", a.LR)
	case a.Beta1 < 0 || a.Beta1 >= 1:
		return fmt.Errorf("adamw: beta1 %g must be in [0, 1)", a.Beta1)
	case a.Beta2 < 0 || a.Beta2 >= 1:
		return fmt.Errorf("adamw: beta2 %g must be in [0, 1)", a.Beta2)
	case a.Eps <= 0:
		return fmt.Errorf("adamw: eps %g must be > 0", a.Eps)
	case a.WeightDecay < 0:
		return fmt.Errorf("adamw: weight_decay %g must be >= 0", a.WeightDecay)
	}
	return nil
}

// NumScalars is the length of the vector Scalars returns.
const NumScalars = 3

// Scalars are the per-step values torch computes in Python for step k (1-based,
// after the increment) at learning rate lr:
// [1 − lr·wd, lr/(1 − β1^k), sqrt(1 − β2^k)].
func (a AdamW) Scalars(k int, lr float64) []float32 {
	bc1 := 1 - math.Pow(a.Beta1, float64(k))
	bc2 := 1 - math.Pow(a.Beta2, float64(k))
	return []float32{float32(1 - lr*a.WeightDecay), float32(lr / bc1), float32(math.Sqrt(bc2))}
}

// Update applies one AdamW step to every parameter (torch's foreach path):
//
//	p ← p·(1 − lr·wd)
//	m ← lerp(m, g, 1 − β1)
//	v ← β2·v + (1 − β2)·g²
//	p ← p − step_size · m / (sqrt(v)/sqrt(1 − β2^k) + eps)
//
// scalars is the [NumScalars] float32 vector of Scalars.
func (a AdamW) Update(params, grads, m, v []*Node, scalars *Node) (newP, newM, newV []*Node) {
	sc := SplitScalars(scalars)
	for i, p := range params {
		g := grads[i]
		// lerp(m, g, w) = m + w·(g − m) for w < 0.5, as torch computes it.
		mi := Add(m[i], MulScalar(Sub(g, m[i]), 1-a.Beta1))
		vi := Add(MulScalar(v[i], a.Beta2), MulScalar(Mul(g, g), 1-a.Beta2))
		newP, newM, newV = append(newP, a.Apply(p, mi, vi, sc)), append(newM, mi), append(newV, vi)
	}
	return
}

// StepScalars are the step's scalars (Scalars), each a node of its own.
type StepScalars struct{ Decay, StepSize, BC2Sqrt *Node }

// SplitScalars slices the [NumScalars] vector of Scalars once per graph.
func SplitScalars(scalars *Node) StepScalars {
	return StepScalars{Slice(scalars, AxisElem(0)), Slice(scalars, AxisElem(1)), Slice(scalars, AxisElem(2))}
}

// Apply is the parameter's half of Update, given its new moments mi and vi:
// the decoupled weight decay, then
// p − step_size · mi / (sqrt(vi)/sqrt(1 − β2^k) + eps). Optimizers that form
// the moments otherwise (internal/layers.ClipAdamW) finish with it.
func (a AdamW) Apply(p, mi, vi *Node, s StepScalars) *Node {
	// Scalars go on the right-hand side: the Go backend's binary ops have a
	// fast path for a scalar rhs only.
	scalar := func(s *Node) *Node { return Reshape(ConvertDType(s, p.DType())) }
	denom := AddScalar(Div(Sqrt(vi), scalar(s.BC2Sqrt)), a.Eps)
	if a.WeightDecay != 0 {
		p = Mul(p, scalar(s.Decay))
	}
	return Sub(p, Mul(Div(mi, denom), scalar(s.StepSize)))
}

// GlobalNorm is the L2 norm over all gradients: sqrt(Σ_g ||g||²), in the dtype
// of the first gradient.
func GlobalNorm(grads []*Node) *Node {
	var total *Node
	for _, g := range grads {
		sq := ReduceAllSum(Mul(g, g))
		if total != nil {
			sq = ConvertDType(sq, total.DType())
		}
		if total == nil {
			total = sq
		} else {
			total = Add(total, sq)
		}
	}
	return Sqrt(total)
}

// ClipByGlobalNorm is clip_grad_norm_(norm_type=2): every gradient is multiplied by
// min(1, maxNorm/(norm + 1e-6)). It returns the clipped gradients and the norm
// before clipping.
func ClipByGlobalNorm(grads []*Node, maxNorm float64) ([]*Node, *Node) {
	norm := GlobalNorm(grads)
	if maxNorm <= 0 {
		return grads, norm
	}
	g := norm.Graph()
	dt := norm.DType()
	coef := Min(Div(Scalar(g, dt, maxNorm), AddScalar(norm, 1e-6)), Scalar(g, dt, 1))
	out := make([]*Node, len(grads))
	for i, gr := range grads {
		out[i] = Mul(gr, ConvertDType(coef, gr.DType()))
	}
	return out, norm
}
