package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
)

// The step with the optimizer on the host (layers.HostAdamW): a graph adds
// the gradients to the step's accumulators, then optim.UpdateInPlace clips
// them by the global norm (a pass over each), applies AdamW to the parameters
// and moments in place (one more pass over each), on every core, and zeroes
// the accumulators for the next step. The
// state's tensors are then the backend's shared buffers (host memory the
// graph reads directly), made once; the accumulators are read where the graph
// wrote them.

// hostOptimizer reports whether st's steps take the host optimizer: the form
// is on for the backend, which shares its buffers with the host, and the
// state is float32.
func (s *Step) hostOptimizer(st *State) bool {
	return hostOptimizerOn(s.backend) && len(st.Params) > 0 && st.Params[0].DType() == dtypes.Float32
}

// hostOptimizerOn reports whether backend b's float32 steps take the host
// optimizer: the form is on for b, and b shares its buffers with the host.
func hostOptimizerOn(b compute.Backend) bool {
	return b != nil && layers.OnBackend(b, layers.HostAdamW) && b.HasSharedBuffers()
}

// hostGradGraph: [params(n), acc(n), x0, xt, t, sigma, dsigma, mask, rng] ->
// [∇loss + acc (n), loss, rng']. The gradients are added to acc, which the
// caller donates: the sums are written into acc's buffers (the backend's
// binary ops reuse a donated right-hand side of the result's shape), so the
// step's gradients leave the graph in the same memory every step. As fresh
// outputs, finalized after each step, they were faulted in anew and the tiny
// step took 1.8x as long (bench/README.md, "Round 2026-12-05 night").
func (s *Step) hostGradGraph(g *Graph, in []*Node) []*Node {
	n := (len(in) - 7) / 2
	params, acc, b := in[:n], in[n:2*n], in[2*n:]
	drop := &backbone.Dropout{Rate: s.Model.Backbone.Dropout, RNG: b[6]}
	p := backbone.ParamsFromNodes(s.Model.Backbone, params)
	loss := s.Loss(p, b[0], b[1], b[2], b[3], b[4], b[5], drop)
	// An embedding table's gradient is its rows' cotangent scattered into
	// the accumulator (layers.EmbeddedRows); the others are added to theirs.
	targets, idx := slices.Clone(params), make([]*Node, n)
	for i, p := range params {
		if rows, ix, ok := layers.EmbeddedRows(p); ok {
			targets[i], idx[i] = rows, ix
		}
	}
	grads := Gradient(loss, targets...)
	out := make([]*Node, 0, n+2)
	for i, gr := range grads {
		if idx[i] != nil {
			out = append(out, ScatterSum(acc[i], idx[i], ConvertDType(gr, acc[i].DType()), false, false))
			continue
		}
		out = append(out, Add(gr, acc[i]))
	}
	return append(out, ConvertDType(loss, dtypes.Float32), drop.RNG)
}

// runHost is Run and RunAccum with the host optimizer: each micro-batch's
// gradients (rngs[i] seeding its dropout) are summed in the accumulators, and
// the update scales the sum by 1/len(batches). It returns the RNG state after
// the last micro-batch.
func (s *Step) runHost(st *State, batches []diffusion.Batch, rngs []*tensors.Tensor) (StepResult, *tensors.Tensor, error) {
	var loss float64
	var grads []*tensors.Tensor
	var rng *tensors.Tensor
	for i, b := range batches {
		g, l, next, err := s.hostGrads(st, b, rngs[i])
		if err != nil {
			if len(batches) > 1 {
				err = fmt.Errorf("micro-batch %d: %w", i, err)
			}
			return StepResult{}, nil, fmt.Errorf("train step %d: %w", st.Step+1, err)
		}
		grads, rng, loss = g, next, loss+float64(l)/float64(len(batches))
	}
	lr := s.LR.LR(st.Step)
	norm, err := s.updateOnHost(st, grads, 1/float64(len(batches)), lr)
	if err != nil {
		s.acc = nil // not zeroed: made anew on the next call
		return StepResult{}, nil, fmt.Errorf("train step %d: %w", st.Step+1, err)
	}
	st.Step++
	return StepResult{Loss: float32(loss), GradNorm: norm, LR: lr}, rng, nil
}

// hostGrads runs the gradient graph on st's parameters (moved into shared
// buffers first) and one batch, adding the gradients to the step's
// accumulators: it returns them (s.acc), the loss and the next RNG state.
func (s *Step) hostGrads(st *State, batch diffusion.Batch, rng *tensors.Tensor) ([]*tensors.Tensor, float32, *tensors.Tensor, error) {
	if err := s.shareState(st); err != nil {
		return nil, 0, nil, err
	}
	if s.hostGradExec == nil {
		exec, err := NewExec(s.backend, s.hostGradGraph)
		if err != nil {
			return nil, 0, nil, err
		}
		s.hostGradExec = exec.WithName("mdlm_train_grads")
	}
	n := len(st.Params)
	if len(s.acc) != n {
		s.acc = make([]*tensors.Tensor, n)
		for i, p := range st.Params {
			// Zeros in a shared buffer, which the graph takes donated as
			// it is (a host tensor would be copied into one at each start).
			a, err := tensors.FromShapeForBackend(s.backend, 0, p.Shape())
			if err != nil {
				s.acc = nil
				return nil, 0, nil, fmt.Errorf("gradient accumulator %d: %w", i, err)
			}
			s.acc[i] = a
		}
	}
	args := make([]any, 0, 2*n+batchInputs)
	for _, p := range st.Params {
		args = append(args, p)
	}
	for _, a := range s.acc {
		d, err := DonateTensorBuffer(a, s.backend, 0)
		if err != nil {
			return nil, 0, nil, err
		}
		args = append(args, d)
	}
	args = append(append(args, batchArgs(batch)...), rng)
	out, err := s.hostGradExec.Call(args...)
	if err != nil {
		s.acc = nil // donated: made anew on the next call
		return nil, 0, nil, err
	}
	s.acc = out[:n]
	return s.acc, tensors.MustCopyFlatData[float32](out[n])[0], out[n+1], nil
}

// updateOnHost clips grads·scale by the global norm and applies AdamW to st in
// place, leaving grads zero; it returns the norm before clipping.
func (s *Step) updateOnHost(st *State, grads []*tensors.Tensor, scale float64, lr float64) (float32, error) {
	ts := make([]optim.Tensors, len(grads))
	var err error
	floats := func(t *tensors.Tensor) []float32 {
		var f []float32
		if err == nil {
			f, err = s.bufferFloat32s(t)
		}
		return f
	}
	for i, g := range grads {
		ts[i] = optim.Tensors{P: floats(st.Params[i]), G: floats(g), M: floats(st.M[i]), V: floats(st.V[i])}
		if err != nil {
			return 0, fmt.Errorf("parameter %d: %w", i, err)
		}
		if n := len(ts[i].G); len(ts[i].P) != n || len(ts[i].M) != n || len(ts[i].V) != n {
			return 0, fmt.Errorf("parameter %d: %d values, gradient %d, moments %d and %d", i, len(ts[i].P), n, len(ts[i].M), len(ts[i].V))
		}
	}
	norm := scale * math.Sqrt(optim.SumSquares(ts, 0))
	coef := 1.0
	if s.ClipNorm > 0 {
		coef = math.Min(s.ClipNorm/(norm+1e-6), 1) // clip_grad_norm_
	}
	s.Opt.UpdateInPlace(ts, float32(coef*scale), s.Opt.Scalars(st.Step+1, lr), 0)
	return float32(norm), nil
}

// bufferFloat32s is the float32 memory of t's buffer on the step's backend,
// shared with the host (the backend writes and reads it directly).
func (s *Step) bufferFloat32s(t *tensors.Tensor) ([]float32, error) {
	buf, err := t.Buffer(s.backend, 0)
	if err != nil {
		return nil, err
	}
	flat, err := buf.Data()
	if err != nil {
		return nil, err
	}
	f, ok := flat.([]float32)
	size := t.Shape().Size()
	if !ok || len(f) < size {
		return nil, fmt.Errorf("buffer holds %T of %d values for shape %s", flat, len(f), t.Shape())
	}
	return f[:size], nil
}

// shareState moves st's parameters and moments into the backend's shared
// buffers, once: afterwards a step reads and updates them where they are.
func (s *Step) shareState(st *State) error {
	for _, group := range [][]*tensors.Tensor{st.Params, st.M, st.V} {
		for i, x := range group {
			if x.IsShared() {
				continue
			}
			sh, err := tensors.FromShapeForBackend(s.backend, 0, x.Shape())
			if err != nil {
				return fmt.Errorf("shared state: %w", err)
			}
			var copyErr error
			tensors.MustMutableFlatData(sh, func(dst []float32) {
				copyErr = x.ConstFlatData(func(src any) { copy(dst, src.([]float32)) })
			})
			if copyErr != nil {
				return fmt.Errorf("shared state: %w", copyErr)
			}
			if err := x.FinalizeAll(); err != nil {
				return fmt.Errorf("shared state: %w", err)
			}
			group[i] = sh
		}
	}
	return nil
}
