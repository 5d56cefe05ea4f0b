package train

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
)

// State is everything a step reads and rewrites: parameters and AdamW moments in
// backbone.Config.Specs order, the number of updates taken, and the dropout RNG.
type State struct {
	Params, M, V []*tensors.Tensor
	Step         int
	RNG          *tensors.Tensor
}

// NewState starts training from weights: zero moments, step 0, RNG from seed.
// dt is the master dtype of parameters and moments (Float32; Float64 for checks).
func NewState(w *backbone.Weights, seed int64, dt dtypes.DType) (*State, error) {
	st := &State{Params: w.TensorsAs(dt)}
	for _, s := range w.Config.Specs() {
		st.M = append(st.M, tensors.FromShape(shapes.Make(dt, s.Shape...)))
		st.V = append(st.V, tensors.FromShape(shapes.Make(dt, s.Shape...)))
	}
	rng, err := RNGStateFromSeed(seed)
	if err != nil {
		return nil, err
	}
	st.RNG = rng
	return st, nil
}

// NewStateOn is NewState with the tensors made where backend b's steps
// keep them (newStateOn): dt Float32 on the Go backend puts them in its
// shared buffers.
func NewStateOn(b compute.Backend, w *backbone.Weights, seed int64, dt dtypes.DType) (*State, error) {
	if dt != dtypes.Float32 {
		return NewState(w, seed, dt)
	}
	return newStateOn(b, w.Config, w.Data, nil, nil, 0, seed)
}

// newStateOn is a float32 state of model at step: its parameters, and its
// AdamW moments m and v (nil: zeros), by parameter name, copied once into
// tensors made where backend b's steps keep them: b's shared buffers (host
// memory the Go backend reads and the host optimizer updates in place,
// hoststep.go) where it has them and its steps take the host optimizer
// (layers.HostAdamW), host tensors elsewhere. Made as host tensors and moved
// into shared buffers at the first step, the state left three of the
// parameters' size as garbage that the first step's allocations piled onto
// (bench/README.md, "Round 2026-12-06 morning").
func newStateOn(b compute.Backend, model backbone.Config, params, m, v map[string][]float32, step int, seed int64) (*State, error) {
	shared := hostOptimizerOn(b)
	st := &State{Step: step}
	for _, s := range model.Specs() {
		for _, part := range []struct {
			what string
			vals map[string][]float32
			to   *[]*tensors.Tensor
		}{{"weights", params, &st.Params}, {"first moment", m, &st.M}, {"second moment", v, &st.V}} {
			t, err := stateTensor(b, shared, s, part.vals)
			if err != nil {
				return nil, fmt.Errorf("train: %s of %s: %w", part.what, s.Name, err)
			}
			*part.to = append(*part.to, t)
		}
	}
	rng, err := RNGStateFromSeed(seed)
	if err != nil {
		return nil, err
	}
	st.RNG = rng
	return st, nil
}

// stateTensor is parameter s's values in vals (zeros when vals is nil) as a
// float32 tensor, in b's shared buffers when shared.
func stateTensor(b compute.Backend, shared bool, s backbone.Spec, vals map[string][]float32) (*tensors.Tensor, error) {
	sh := shapes.Make(dtypes.Float32, s.Shape...)
	var v []float32
	if vals != nil {
		v = vals[s.Name]
		if len(v) != sh.Size() {
			return nil, fmt.Errorf("%d values, want %d", len(v), sh.Size())
		}
	}
	if !shared {
		if v == nil {
			return tensors.FromShape(sh), nil
		}
		return tensors.FromFlatDataAndDimensions(v, s.Shape...), nil // copies v
	}
	t, err := tensors.FromShapeForBackend(b, 0, sh) // zeros
	if err != nil {
		return nil, err
	}
	if v != nil {
		tensors.MustMutableFlatData(t, func(dst []float32) { copy(dst, v) })
	}
	return t, nil
}

// Step is a compiled training step: the forward pass, the per-token loss and
// its token mean, gradients, global-norm clipping and one AdamW update in one
// GoMLX graph whose state (parameters, Adam moments, dropout RNG) stays on the
// device between steps.
type Step struct {
	Model    diffusion.Model
	Opt      optim.AdamW
	LR       optim.LRSchedule
	ClipNorm float64 // global-norm clip (1.0 in the reference); <= 0 disables
	InvFreq  []float32
	// MixedPrecision, when set (dtypes.BFloat16), runs the block and output matmuls
	// in that dtype over float32 master weights (the reference's bf16 autocast).
	MixedPrecision dtypes.DType
	exec           *Exec

	backend                      compute.Backend
	gradExec, applyExec, sumExec *Exec             // gradient accumulation (RunAccum)
	hostGradExec                 *Exec             // the gradients for the host optimizer (hoststep.go)
	acc                          []*tensors.Tensor // its gradient accumulators, zero between steps
}

// NewStep compiles lazily (on the first Run) for the given backend.
func NewStep(b compute.Backend, m diffusion.Model, opt optim.AdamW, lr optim.LRSchedule, clip float64, invFreq []float32) (*Step, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	s := &Step{Model: m, Opt: opt, LR: lr, ClipNorm: clip, InvFreq: invFreq, backend: b}
	exec, err := NewExec(b, s.graph)
	if err != nil {
		return nil, err
	}
	s.exec = exec.WithName("mdlm_train_step")
	return s, nil
}

// numInputs excluding the parameter/moment triples.
const batchInputs = 7 // x0, xt, t, sigma, dsigma, token mask, optimizer scalars

// Loss builds the batch loss from parameters and batch nodes: the token mean
// Σ loss·mask / Σ mask of diffusion.py: Diffusion._loss.
func (s *Step) Loss(p backbone.Params, x0, xt, t, sigma, dsigma, tokenMask *Node, drop *backbone.Dropout) *Node {
	if s.MixedPrecision != dtypes.InvalidDType {
		p = backbone.CastMatmulWeights(p, s.MixedPrecision)
	}
	if s.Model.Param == diffusion.ARP {
		loss := s.Model.ARPerTokenLoss(p, s.InvFreq, x0, layers.Training, drop)
		return diffusion.TokenMean(loss, Slice(tokenMask, AxisRange(), AxisRange(1, tokenMask.Shape().Dimensions[1])))
	}
	in := diffusion.DiffusionInputs{X0: x0, XT: xt, T: t, Sigma: sigma, DSigma: dsigma}
	return diffusion.TokenMean(s.Model.PerTokenLoss(p, s.InvFreq, in, layers.Training, drop), tokenMask)
}

// graph: inputs [params(n), m(n), v(n), x0, xt, t, sigma, dsigma, mask, scalars, rng];
// outputs [params'(n), m'(n), v'(n), loss, grad norm, rng'].
func (s *Step) graph(g *Graph, in []*Node) []*Node {
	n := (len(in) - batchInputs - 1) / 3
	params, m, v := in[:n], in[n:2*n], in[2*n:3*n]
	b := in[3*n:]
	drop := &backbone.Dropout{Rate: s.Model.Backbone.Dropout, RNG: b[7]}
	p := backbone.ParamsFromNodes(s.Model.Backbone, params)
	loss := s.Loss(p, b[0], b[1], b[2], b[3], b[4], b[5], drop)
	grads := Gradient(loss, params...)
	norm, ready, update := layers.ClipAdamW(s.Opt, s.ClipNorm, grads, b[6])
	newP, newM, newV := updateInTurn(update, params, ready, m, v, inTurnBytes)
	out := append(append(append([]*Node{}, newP...), newM...), newV...)
	return append(out, ConvertDType(loss, dtypes.Float32), ConvertDType(norm, dtypes.Float32), drop.RNG)
}

// inTurnBytes is the size from which parameters are updated one after another:
// each AdamW update holds about two temporaries of its parameter's size, so two
// vocabulary matrices of the tiny config (103 MB each) updated at once held four
// (bench/README.md, issue 20: peak memory of the tiny step).
const inTurnBytes = 16 << 20

// updateInTurn is update with the updates of the parameters of minBytes
// or more made in turn, largest first: each one's gradient passes a
// SchedulingBarrier on the previous one's new value, so its temporaries are
// allocated only after the previous one's were freed. The values are
// update's; only the order of execution changes.
func updateInTurn(update layers.AdamWUpdate, params, grads, m, v []*Node, minBytes uintptr) (newP, newM, newV []*Node) {
	var big, rest []int
	for i, p := range params {
		if p.Shape().Memory() >= minBytes {
			big = append(big, i)
		} else {
			rest = append(rest, i)
		}
	}
	if len(big) < 2 {
		return update(params, grads, m, v) // the same graph as before
	}
	newP, newM, newV = make([]*Node, len(params)), make([]*Node, len(params)), make([]*Node, len(params))
	updateSome := func(idx []int, gradOf func(i int) *Node) {
		pick := func(xs []*Node) []*Node {
			out := make([]*Node, len(idx))
			for k, i := range idx {
				out[k] = xs[i]
			}
			return out
		}
		g := make([]*Node, len(idx))
		for k, i := range idx {
			g[k] = gradOf(i)
		}
		p, mi, vi := update(pick(params), g, pick(m), pick(v))
		for k, i := range idx {
			newP[i], newM[i], newV[i] = p[k], mi[k], vi[k]
		}
	}
	if len(rest) > 0 {
		updateSome(rest, func(i int) *Node { return grads[i] })
	}
	slices.SortStableFunc(big, func(a, b int) int { return cmp.Compare(params[b].Shape().Size(), params[a].Shape().Size()) })
	for k, i := range big {
		updateSome([]int{i}, func(i int) *Node {
			if k == 0 {
				return grads[i]
			}
			return SchedulingBarrier(grads[i], newP[big[k-1]])
		})
	}
	return newP, newM, newV
}

// StepResult is the outcome of one optimizer step.
type StepResult struct {
	Loss, GradNorm float32
	LR             float64
}

// Run takes one optimizer step on batch, replacing st's tensors (the old device
// buffers are donated to the step, and host copies, as a state from NewState
// has before its first step, are freed: st's old tensors are invalid after).
func (s *Step) Run(st *State, batch diffusion.Batch) (StepResult, error) {
	if s.hostOptimizer(st) {
		res, rng, err := s.runHost(st, []diffusion.Batch{batch}, []*tensors.Tensor{st.RNG})
		if err == nil {
			st.RNG = rng
		}
		return res, err
	}
	n := len(st.Params)
	lr := s.LR.LR(st.Step)
	args := make([]any, 0, 3*n+batchInputs+1)
	// The state's buffers are donated: the backend may reuse them for the outputs
	// instead of holding inputs and outputs at once (the old tensors are dead after).
	for _, group := range [][]*tensors.Tensor{st.Params, st.M, st.V} {
		for _, x := range group {
			d, err := DonateTensorBuffer(x, s.backend, 0)
			if err != nil {
				return StepResult{}, fmt.Errorf("train step %d: %w", st.Step+1, err)
			}
			// A state fresh from the host (the first step) keeps its host copy
			// after donating a device copy: free it now, not after the step.
			if err := x.FinalizeAll(); err != nil {
				return StepResult{}, fmt.Errorf("train step %d: host copy: %w", st.Step+1, err)
			}
			args = append(args, d)
		}
	}
	args = append(args, batchArgs(batch)...)
	args = append(args, tensors.FromFlatDataAndDimensions(s.Opt.Scalars(st.Step+1, lr), optim.NumScalars), st.RNG)
	out, err := s.exec.Call(args...)
	if err != nil {
		return StepResult{}, fmt.Errorf("train step %d: %w", st.Step+1, err)
	}
	st.Params, st.M, st.V = out[:n], out[n:2*n], out[2*n:3*n]
	st.RNG = out[3*n+2]
	st.Step++
	return StepResult{
		Loss:     tensors.MustCopyFlatData[float32](out[3*n])[0],
		GradNorm: tensors.MustCopyFlatData[float32](out[3*n+1])[0],
		LR:       lr,
	}, nil
}
