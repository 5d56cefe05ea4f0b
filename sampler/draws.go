package sampler

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// Precision is the floating-point type of the categorical draws.
type Precision string

const (
	// Float32 draws as the reference does: diffusion.py's _sample_categorical on
	// float32 tensors (float32 uniforms, float32 arithmetic). The zero value
	// means Float32, so existing callers replay the reference exactly.
	Float32 Precision = "float32"
	// Float64 draws from float64 uniforms in float64 arithmetic. A float32
	// uniform is never closer to 1 than 2^-24, so −log u is never below about
	// 6e-8 and a token whose probability is under about 1e-7 of the row's
	// almost never wins the race: float32 draws cut the tail and lower the
	// samples' entropy and generative perplexity (bench/README.md, "Float64
	// draws"). Float64 uniforms reach 2^-53.
	Float64 Precision = "float64"
)

// Precisions lists the draw precisions.
var Precisions = []Precision{Float64, Float32}

func (p Precision) dtype() dtypes.DType {
	if p == Float64 {
		return dtypes.Float64
	}
	return dtypes.Float32
}

// Remasking chooses which masked positions a ddpm-family step unmasks.
type Remasking string

const (
	// RandomRemasking is the reference's (_ddpm_update): each masked position
	// unmasks independently with probability (mc_t − mc_s)/mc_t.
	RandomRemasking Remasking = "random"
	// LowConfidence unmasks, in each row, as many positions as the random rule
	// would (the same count), but the ones whose drawn token has the highest
	// probability under the distribution it was drawn from (MaskGIT's and
	// LLaDA's confidence-ordered unmasking).
	LowConfidence Remasking = "low-confidence"
)

// FinalStep is the kind of noise-removal step run after the last update when
// Options.NoiseRemoval is on.
type FinalStep string

const (
	// FinalReference is the reference's step (the zero value): for the ddpm
	// family x ← argmax model_logp(x, σ(eps)); for analytic the SEDD denoiser
	// (_denoiser_update), which samples.
	FinalReference FinalStep = ""
	// FinalGreedy takes the argmax of the final step's distribution for every
	// sampler (DUO's noise_removal=greedy): for the ddpm family the same as the
	// reference, for analytic the argmax of _denoiser_update's probabilities.
	FinalGreedy FinalStep = "greedy"
	// FinalAncestral runs one more update to t = 0 (mc_s = 0), so every
	// remaining mask draws its token from the (tempered, top-p) denoiser
	// distribution (DUO's noise_removal=ancestral); for analytic it is the
	// reference's SEDD denoiser.
	FinalAncestral FinalStep = "ancestral"
)

// drawing reports whether any option changes the draws of the reference's
// update (a different graph from the reference's).
func (o Options) drawing() bool {
	return o.Draws == Float64 || o.tempered() || o.nucleus()
}

func (o Options) tempered() bool { return o.Temperature != 0 && o.Temperature != 1 }
func (o Options) nucleus() bool  { return o.TopP != 0 && o.TopP < 1 }

// drawSuffix names the graph variant of the draw options, for executables
// built per option set ("" for the reference's).
func (o Options) drawSuffix() string {
	if !o.drawing() {
		return ""
	}
	return fmt.Sprintf("_%s_p%g_t%g", o.Draws.dtype(), o.TopP, o.Temperature)
}

// validateDraws checks the draw options alone.
func (o Options) validateDraws() error {
	switch o.Draws {
	case "", Float32, Float64:
	default:
		return fmt.Errorf("draw precision %q: want float64 or float32", o.Draws)
	}
	switch o.Remasking {
	case "", RandomRemasking, LowConfidence:
	default:
		return fmt.Errorf("remasking %q: want random or low-confidence", o.Remasking)
	}
	switch o.Final {
	case FinalReference, FinalGreedy, FinalAncestral:
	default:
		return fmt.Errorf("noise removal %q: want greedy or ancestral (or the reference's)", o.Final)
	}
	if math.IsNaN(o.TopP) || o.TopP < 0 || o.TopP > 1 {
		return fmt.Errorf("top-p %g must be in (0, 1] (1: off)", o.TopP)
	}
	if math.IsNaN(o.Temperature) || math.IsInf(o.Temperature, 0) || o.Temperature < 0 {
		return fmt.Errorf("temperature %g must be > 0 (1: off)", o.Temperature)
	}
	return nil
}

// drawNode draws with _sample_categorical's exponential race (categorical)
// in the uniforms' precision, converting the weights to it: with float32
// uniforms it is exactly the reference's draw.
func drawNode(w, u *Node) *Node {
	if w.DType() != u.DType() {
		w = ConvertDType(w, u.DType())
	}
	return categorical(w, u)
}

// nucleusFilter is top-p (nucleus) filtering over the last axis of p, a
// probability row (non-negative, summing to 1): it keeps the smallest set of
// most probable tokens whose mass reaches topP (ties at the threshold all
// kept), zeroes the rest and renormalises, in p's dtype. DUO's and BD3-LM's
// samplers filter the same way (utils.py: top_k_top_p_filtering, which keeps
// the token that crosses topP and renormalises).
//
// The threshold τ, the least kept probability, is the largest τ whose mass
// Σ_{p_v ≥ τ} p_v reaches topP. It is found without sorting (the pure-Go
// backend's sort is far slower than the rest of a draw) by bisection over
// the probabilities' bit patterns, which order non-negative floats as their
// values: 31 (float32) or 63 (float64) halvings of [0, max p] end on τ exactly.
func nucleusFilter(p *Node, topP float64) *Node {
	intType, halvings := dtypes.Int32, 31
	if p.DType() == dtypes.Float64 {
		intType, halvings = dtypes.Int64, 63
	}
	bits := Bitcast(p, intType)
	top := ReduceAndKeep(bits, ReduceMax, -1)
	lo, hi := ZerosLike(top), AddScalar(top, 1) // mass(lo) = 1 ≥ topP > mass(hi) = 0
	target, zero := Scalar(p.Graph(), p.DType(), topP), ZerosLike(p)
	for range halvings {
		mid := Add(lo, BitwiseShiftRightLogicalScalar(Sub(hi, lo), 1))
		mass := ReduceAndKeep(Where(GreaterOrEqual(bits, mid), p, zero), ReduceSum, -1)
		enough := GreaterOrEqual(mass, target)
		lo, hi = Where(enough, mid, lo), Where(enough, hi, mid)
	}
	kept := Where(GreaterOrEqual(bits, lo), p, zero)
	return Div(kept, ReduceAndKeep(kept, ReduceSum, -1))
}

// drawWeights applies the options to probability rows before a draw: the
// conversion to the draw precision and top-p filtering. (Temperature is
// applied to the logits, in the denoiser.)
func drawWeights(p *Node, o Options) *Node {
	if !o.drawing() {
		return p
	}
	if dt := o.Draws.dtype(); p.DType() != dt {
		p = ConvertDType(p, dt)
	}
	if o.nucleus() {
		p = nucleusFilter(p, o.TopP)
	}
	return p
}

// uniforms draws uniforms of the given shape and dtype from the in-graph
// generator state rng (GoMLX's RandomUniform: a float32 draw is
// float32(uint32)·2^-32, never above 1 − 2^-24; a float64 one float64(uint64)·2^-64).
func uniforms(rng *Node, dt dtypes.DType, dims ...int) (newRNG, u *Node) {
	return RandomUniform(rng, shapes.Make(dt, dims...))
}

// temperedProbs is denoiserProbs with the logits divided by the temperature
// before the softmax; where the parameterization pushes [MASK] by −1e6 (SUBS,
// d3pm with subs masking) its column stays exactly 0 whatever the temperature
// does to that logit.
func temperedProbs(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node, temperature float64) *Node {
	probs := Softmax(DivScalar(denoiserLogits(m, p, invFreq, x, cond), temperature), -1)
	if m.Param == diffusion.D3PM && !m.SubsMasking {
		return probs
	}
	dims := probs.Shape().Dimensions
	return Where(BroadcastToDims(isMaskColumn(x.Graph(), dims[2], m.Backbone.MaskIndex), dims...), ZerosLike(probs), probs)
}

// denoiserLogits is the logits whose softmax is denoiserProbs: d3pm's through
// its parameterization, SUBS's zero-masked ones.
func denoiserLogits(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	if m.Param == diffusion.D3PM {
		return d3pmLogits(m, p, invFreq, x, cond)
	}
	return diffusion.ZeroMaskedLogits(m.Backbone, p, invFreq, x, cond, layers.Inference, nil)
}

// arWeights applies the draw options to an AR row of logits (or log-probs)
// [B, V]: the draw precision, the temperature (log-softmax of logits / T) and
// top-p (log of the renormalised nucleus, −∞ outside it). Without options it
// is the row itself, as _ar_sampler adds the Gumbel noise to it.
func arWeights(row *Node, o Options) *Node {
	if !o.drawing() {
		return row
	}
	if dt := o.Draws.dtype(); row.DType() != dt {
		row = ConvertDType(row, dt)
	}
	if o.tempered() {
		row = DivScalar(row, o.Temperature)
	}
	row = LogSoftmax(row, -1)
	if o.nucleus() {
		row = Log(nucleusFilter(Exp(row), o.TopP))
	}
	return row
}
