package sampler

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// Graph pieces of the samplers. Shapes: x [B, L] int32, probabilities and scores
// [B, L, V] float32, per-row scalars [B] float32, uniforms u [B, L, V].

// categorical is _sample_categorical: argmax_v w_v / (1e-10 − log(u_v + 1e-10)).
// w may be unnormalised (any non-negative weights).
func categorical(w, u *Node) *Node {
	norm := Neg(Log(AddScalar(u, 1e-10)))
	norm = AddScalar(norm, 1e-10)
	return ArgMax(Div(w, norm), -1, dtypes.Int32)
}

func isMaskColumn(g *Graph, V, mask int) *Node {
	return Equal(Iota(g, shapes.Make(dtypes.Int32, 1, 1, V), 2), Scalar(g, dtypes.Int32, mask))
}

func col(v *Node) *Node { return ExpandAxes(v, 1, 2) } // [B] -> [B, 1, 1]

// subsProbs is x_θ(z_t) of the denoiser at the masked positions:
// exp(SUBS log-probabilities), computed as a softmax of the zero-masked logits
// (the [MASK] bump folded into the output bias) through the backend's fused
// softmax. SUBS's carry-over (one-hot rows at unmasked positions) is left out:
// every update keeps unmasked tokens whatever their row holds (the reference's
// copy_flag), so those rows are never read.
func subsProbs(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	return Softmax(diffusion.ZeroMaskedLogits(m.Backbone, p, invFreq, x, cond, layers.Inference, nil), -1)
}

// subsArgmax is the ddpm noise-removal step: argmax_v of the SUBS log-probabilities.
func subsArgmax(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	logits := backbone.Forward(m.Backbone, p, invFreq, x, cond, layers.Inference, nil)
	return ArgMax(diffusion.SUBSLogProbs(logits, x, m.Backbone.MaskIndex), -1, dtypes.Int32)
}

// denoiserProbs is exp(model_logp(x, σ)) under the model's own parameterization
// (the reference's _ddpm_update calls self.forward, which applies it): SUBS
// (zero masking, carry-over), or for d3pm the softmax of its logits, with the
// [MASK] column (0 when trained with subs masking) and no carry-over
// (diffusion.py: _d3pm_parameterization).
func denoiserProbs(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	if m.Param == diffusion.D3PM {
		return Softmax(d3pmLogits(m, p, invFreq, x, cond), -1)
	}
	return subsProbs(m, p, invFreq, x, cond)
}

// denoiserArgmax is the ddpm noise-removal step, x ← argmax_v model_logp(x, σ),
// under the model's parameterization: for d3pm every position is re-decoded
// (there is no carry-over) and [MASK] can win unless the model was trained
// with subs masking, as in the reference.
func denoiserArgmax(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	if m.Param == diffusion.D3PM {
		return ArgMax(d3pmLogits(m, p, invFreq, x, cond), -1, dtypes.Int32)
	}
	return subsArgmax(m, p, invFreq, x, cond)
}

// d3pmLogits is the d3pm denoiser's logits for inference, through the model's
// parameterization (diffusion.Model.D3PMLogits: −1e6 on [MASK] under subs
// masking; diffusion.py: _d3pm_parameterization).
func d3pmLogits(m diffusion.Model, p backbone.Params, invFreq []float32, x, cond *Node) *Node {
	return m.D3PMLogits(p, invFreq, x, cond, layers.Inference, nil)
}

// ddpmUpdate is _ddpm_update / _ddpm_caching_update after the denoiser:
// q_v = p_v·(mc_t − mc_s), q_mask = mc_s, draw x' ~ q, keep unmasked tokens.
func ddpmUpdate(x, probs, mct, mcs, u *Node, mask int) *Node {
	g := x.Graph()
	dims := probs.Shape().Dimensions
	q := Mul(probs, col(Sub(mct, mcs)))
	q = Where(BroadcastToDims(isMaskColumn(g, dims[2], mask), dims...), BroadcastToDims(col(mcs), dims...), q)
	draw := categorical(q, u)
	return Where(Equal(x, Scalar(g, dtypes.Int32, mask)), draw, x)
}

// subsScore is diffusion.py: get_score for a SUBS model, its SUBS log-probs turned
// into a concrete score with log k = −log(expm1(σ)): at a masked position
// log S_y = log p_y + log k (y ≠ mask) and log S_mask = 0; at a position holding
// a, log S_a = 0, log S_mask = −log k and −1e6 elsewhere. σ is σ(t); the
// backbone sees it only when the model is time-conditioned.
func subsScore(m diffusion.Model, p backbone.Params, invFreq []float32, x, sigma *Node) *Node {
	g := x.Graph()
	cond := sigma
	if !m.TimeConditioning {
		cond = ZerosLike(sigma)
	}
	logp := diffusion.SUBSLogProbs(backbone.Forward(m.Backbone, p, invFreq, x, cond, layers.Inference, nil), x, m.Backbone.MaskIndex)
	dims := logp.Shape().Dimensions
	B, L, V := dims[0], dims[1], dims[2]
	logk := col(Neg(Log(Expm1(sigma)))) // [B, 1, 1]
	maskCol := BroadcastToDims(isMaskColumn(g, V, m.Backbone.MaskIndex), dims...)
	zero := ZerosLike(logp)
	masked := Where(maskCol, zero, Add(logp, logk))
	onehot := Equal(Iota(g, shapes.Make(dtypes.Int32, B, L, V), 2), BroadcastToDims(ExpandAxes(x, -1), dims...))
	unmasked := Where(onehot, zero, BroadcastToDims(Scalar(g, logp.DType(), diffusion.NegInfinity), dims...))
	unmasked = Where(maskCol, BroadcastToDims(Neg(logk), dims...), unmasked)
	isMaskPos := BroadcastToDims(ExpandAxes(Equal(x, Scalar(g, dtypes.Int32, m.Backbone.MaskIndex)), -1), dims...)
	return Exp(Where(isMaskPos, masked, unmasked))
}

// score is get_score under the model's parameterization (sedd or subs).
func score(m diffusion.Model, p backbone.Params, invFreq []float32, x, sigma *Node) *Node {
	if m.Param == diffusion.SEDD {
		return seddScore(m, p, invFreq, x, sigma)
	}
	return subsScore(m, p, invFreq, x, sigma)
}

// seddScore is get_score for the sedd parameterization: exp of the log-score.
func seddScore(m diffusion.Model, p backbone.Params, invFreq []float32, x, sigma *Node) *Node {
	logits := backbone.Forward(m.Backbone, p, invFreq, x, sigma, layers.Inference, nil)
	return Exp(diffusion.SEDDLogScore(logits, x, sigma))
}

// analyticUpdate is _analytic_update (final=false, with dσ) or _denoiser_update
// (final=true, with σ and p[mask] = 0):
// S̃ = S·e^{dσ}, S̃_mask += (1 − e^{dσ})·Σ_y S_y; E = e^{−dσ}·onehot(x) plus
// (1 − e^{−dσ}) on every entry of masked positions; draw from S̃ ⊙ E, in the
// uniforms' precision (float32 as the reference, or float64).
func analyticUpdate(x, score, dsigma, u *Node, mask int, final bool) *Node {
	return drawNode(analyticProbs(x, score, dsigma, mask, final), u)
}

// analyticProbs is the unnormalised distribution S̃ ⊙ E analyticUpdate draws from.
func analyticProbs(x, score, dsigma *Node, mask int, final bool) *Node {
	g := x.Graph()
	dims := score.Shape().Dimensions
	B, L, V := dims[0], dims[1], dims[2]
	e := Exp(dsigma)                                                     // [B]
	extra := Mul(OneMinus(col(e)), ExpandAxes(ReduceSum(score, -1), -1)) // [B, L, 1]
	stag := Mul(score, col(e))
	maskCol := BroadcastToDims(isMaskColumn(g, V, mask), dims...)
	stag = Where(maskCol, Add(stag, BroadcastToDims(extra, dims...)), stag)
	eneg := col(Exp(Neg(dsigma))) // [B, 1, 1]
	onehot := ConvertDType(Equal(Iota(g, shapes.Make(dtypes.Int32, B, L, V), 2), BroadcastToDims(ExpandAxes(x, -1), dims...)), score.DType())
	edge := Mul(onehot, eneg)
	isMaskPos := ConvertDType(Equal(x, Scalar(g, dtypes.Int32, mask)), score.DType()) // [B, L]
	edge = Add(edge, BroadcastToDims(ExpandAxes(Mul(isMaskPos, ExpandAxes(OneMinus(Exp(Neg(dsigma))), 1)), -1), dims...))
	probs := Mul(stag, edge)
	if final {
		probs = Where(maskCol, ZerosLike(probs), probs)
	}
	return probs
}

// mergeRows returns cache with rows replaced from fresh where sel[b]: row b takes
// fresh[idx[b]]. cache [B, L, V], fresh [k, L, V], sel [B] bool, idx [B] int32.
func mergeRows(cache, fresh, sel, idx *Node) *Node {
	picked := Gather(fresh, ExpandAxes(idx, -1)) // [B, L, V]
	return Where(BroadcastToDims(col(sel), cache.Shape().Dimensions...), picked, cache)
}

// arNext is one AR sampling step on the full-length buffer: the causal model's
// log-probabilities at position i (later positions cannot influence it), plus
// Gumbel noise, argmax. pos is a scalar int32; gumbel is [B, V] in the draw
// precision (arWeights applies the draw options to the row first).
func arNext(m diffusion.Model, p backbone.Params, invFreq []float32, x, pos, gumbel *Node, o Options) *Node {
	logp := backbone.Forward(m.Backbone, p, invFreq, x, nil, layers.Inference, nil) // [B, L, V]
	dims := logp.Shape().Dimensions
	B, L, V := dims[0], dims[1], dims[2]
	atPos := Equal(Iota(x.Graph(), shapes.Make(dtypes.Int32, B, L, V), 1), BroadcastToDims(pos, B, L, V))
	row := ReduceSum(Where(atPos, logp, ZerosLike(logp)), 1) // [B, V]
	return ArgMax(Add(arWeights(row, o), gumbel), -1, dtypes.Int32)
}
