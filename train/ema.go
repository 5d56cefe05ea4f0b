package train

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// newEMAExec compiles the EMA update of n parameters: inputs [shadow(n),
// params(n), decay], outputs the new shadow.
func newEMAExec(b compute.Backend, n int) *Exec {
	return MustNewExec(b, func(g *Graph, in []*Node) []*Node {
		d := in[2*n] // decay, scalar
		out := make([]*Node, n)
		for i := 0; i < n; i++ {
			// shadow ← shadow − (1 − d)·(shadow − θ)
			out[i] = Sub(in[i], Mul(Sub(in[i], in[n+i]), OneMinus(d)))
		}
		return out
	}).WithName("ema_update")
}

// updateEMA applies shadow ← shadow − (1 − d)(shadow − θ) with
// d = min(decay, (1 + n)/(10 + n)) (models/ema.py).
func (t *trainer) updateEMA() error {
	if t.cfg.EMA <= 0 {
		return nil // no EMA: evaluation and checkpoints use the raw weights (see emaOrParams)
	}
	t.emaN++
	d := math.Min(t.cfg.EMA, (1+float64(t.emaN))/(10+float64(t.emaN)))
	args := make([]any, 0, 2*len(t.ema)+1)
	for _, e := range t.ema {
		args = append(args, e)
	}
	for _, p := range t.state.Params {
		args = append(args, p)
	}
	args = append(args, tensors.FromScalar(float32(d)))
	out, err := t.emaExec.Call(args...)
	if err != nil {
		return fmt.Errorf("ema update: %w", err)
	}
	t.ema = out
	return nil
}

// emaOrParams is the EMA weights, or the raw ones when EMA is off. (The step
// donates the raw weights' buffers, so the EMA must never alias them.)
func (t *trainer) emaOrParams() []*tensors.Tensor {
	if t.cfg.EMA <= 0 {
		return t.state.Params
	}
	return t.ema
}
