package train

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
)

// Gradient accumulation (Lightning's accumulate_grad_batches): each micro-batch's
// token mean is divided by the number of micro-batches, their gradients summed,
// and one clip + AdamW update follows, so the update equals one step on the mean
// of the micro-batch losses.

// batchArgs are the six batch tensors of the graphs.
func batchArgs(batch diffusion.Batch) []any {
	B, L := batch.B, batch.L
	xt, t, sigma, dsigma := batch.NoiseInputs()
	return []any{
		tensors.FromFlatDataAndDimensions(batch.X0, B, L),
		tensors.FromFlatDataAndDimensions(xt, B, L),
		tensors.FromFlatDataAndDimensions(t, B),
		tensors.FromFlatDataAndDimensions(sigma, B),
		tensors.FromFlatDataAndDimensions(dsigma, B),
		tensors.FromFlatDataAndDimensions(batch.TokenMask, B, L),
	}
}

// gradGraph: [params(n), x0, xt, t, sigma, dsigma, mask, rng, scale] ->
// [scale·∇loss (n), loss, rng'].
func (s *Step) gradGraph(g *Graph, in []*Node) []*Node {
	n := len(in) - 8
	params, b := in[:n], in[n:]
	drop := &backbone.Dropout{Rate: s.Model.Backbone.Dropout, RNG: b[6]}
	p := backbone.ParamsFromNodes(s.Model.Backbone, params)
	loss := s.Loss(p, b[0], b[1], b[2], b[3], b[4], b[5], drop)
	grads := Gradient(loss, params...)
	out := make([]*Node, 0, n+2)
	for _, gr := range grads {
		out = append(out, Mul(gr, ConvertDType(b[7], gr.DType())))
	}
	return append(out, ConvertDType(loss, dtypes.Float32), drop.RNG)
}

// applyGraph: [params(n), m(n), v(n), grads(n), scalars] -> [p', m', v', norm].
func (s *Step) applyGraph(g *Graph, in []*Node) []*Node {
	n := (len(in) - 1) / 4
	params, m, v, grads := in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n]
	norm, ready, update := layers.ClipAdamW(s.Opt, s.ClipNorm, grads, in[4*n])
	newP, newM, newV := update(params, ready, m, v)
	out := append(append(append([]*Node{}, newP...), newM...), newV...)
	return append(out, ConvertDType(norm, dtypes.Float32))
}

func sumGraph(g *Graph, in []*Node) []*Node {
	n := len(in) / 2
	out := make([]*Node, n)
	for i := range out {
		out[i] = Add(in[i], in[n+i])
	}
	return out
}

// RunAccum takes one optimizer step on the mean of several micro-batches; rngs
// seeds each micro-batch's dropout. With one micro-batch it is Run.
func (s *Step) RunAccum(st *State, batches []diffusion.Batch, rngs []*tensors.Tensor) (StepResult, error) {
	if len(batches) == 1 {
		st.RNG = rngs[0]
		return s.Run(st, batches[0])
	}
	if s.hostOptimizer(st) {
		res, _, err := s.runHost(st, batches, rngs)
		return res, err
	}
	if s.gradExec == nil {
		s.gradExec = MustNewExec(s.backend, s.gradGraph).WithName("mdlm_grad")
		s.applyExec = MustNewExec(s.backend, s.applyGraph).WithName("mdlm_apply")
		s.sumExec = MustNewExec(s.backend, sumGraph).WithName("mdlm_grad_sum")
	}
	n := len(st.Params)
	scale := tensors.FromScalar(float32(1 / float64(len(batches))))
	var acc []*tensors.Tensor
	var loss float64
	for i, b := range batches {
		args := make([]any, 0, n+8)
		for _, p := range st.Params {
			args = append(args, p)
		}
		args = append(append(args, batchArgs(b)...), rngs[i], scale)
		out, err := s.gradExec.Call(args...)
		if err != nil {
			return StepResult{}, fmt.Errorf("train step %d, micro-batch %d: %w", st.Step+1, i, err)
		}
		loss += float64(tensors.MustCopyFlatData[float32](out[n])[0]) / float64(len(batches))
		if acc == nil {
			acc = out[:n]
			continue
		}
		sargs := make([]any, 0, 2*n)
		for _, x := range append(append([]*tensors.Tensor{}, acc...), out[:n]...) {
			sargs = append(sargs, x)
		}
		if acc, err = s.sumExec.Call(sargs...); err != nil {
			return StepResult{}, err
		}
	}
	lr := s.LR.LR(st.Step)
	args := make([]any, 0, 4*n+1)
	for _, group := range [][]*tensors.Tensor{st.Params, st.M, st.V, acc} {
		for _, x := range group {
			args = append(args, x)
		}
	}
	args = append(args, tensors.FromFlatDataAndDimensions(s.Opt.Scalars(st.Step+1, lr), optim.NumScalars))
	out, err := s.applyExec.Call(args...)
	if err != nil {
		return StepResult{}, fmt.Errorf("train step %d: %w", st.Step+1, err)
	}
	st.Params, st.M, st.V = out[:n], out[n:2*n], out[2*n:3*n]
	st.Step++
	return StepResult{Loss: float32(loss), GradNorm: tensors.MustCopyFlatData[float32](out[3*n])[0], LR: lr}, nil
}
