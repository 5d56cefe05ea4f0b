package diffusion

import (
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// NegInfinity is the finite "−∞" of the reference (neg_infinity = −1e6): SUBS
// zero-masking and carry-over use it, never a true −Inf.
const NegInfinity = -1e6

// Parameterization names the model output transform and loss family
// (diffusion.py: Diffusion.forward).
type Parameterization string

const (
	SUBS Parameterization = "subs"
	D3PM Parameterization = "d3pm"
	SEDD Parameterization = "sedd"
	ARP  Parameterization = "ar"
)

// vocabIota is an int32 [1, 1, V] ramp, for comparisons against token ids.
func vocabIota(g *Graph, V int) *Node {
	return Iota(g, shapes.Make(dtypes.Int32, 1, 1, V), 2)
}

// oneHotMask is true at [b, i, ids[b, i]]: ids [B, L] int32 -> bool [B, L, V].
func oneHotMask(ids *Node, V int) *Node {
	dims := ids.Shape().Dimensions
	return Equal(BroadcastToDims(vocabIota(ids.Graph(), V), dims[0], dims[1], V),
		BroadcastToDims(ExpandAxes(ids, -1), dims[0], dims[1], V))
}

// Pick returns x[b, i, ids[b, i]]: x [B, L, V], ids [B, L] -> [B, L].
func Pick(x, ids *Node) *Node {
	V := x.Shape().Dimensions[2]
	return ReduceSum(Where(oneHotMask(ids, V), x, ZerosLike(x)), -1)
}

// SUBSLogProbs is diffusion.py: _subs_parameterization: the [MASK] logit gets
// += −1e6, log-softmax over V, then every unmasked position (xt ≠ mask) becomes a
// one-hot row at its token: 0 there and −1e6 elsewhere (carry-over unmasking).
func SUBSLogProbs(logits, xt *Node, maskIndex int) *Node {
	g := logits.Graph()
	dims := logits.Shape().Dimensions
	B, L, V := dims[0], dims[1], dims[2]
	isMaskCol := Equal(vocabIota(g, V), Scalar(g, dtypes.Int32, maskIndex))
	bump := Where(isMaskCol, Scalar(g, logits.DType(), NegInfinity), Scalar(g, logits.DType(), 0))
	logp := LogSoftmax(Add(logits, bump), -1)
	carry := Where(oneHotMask(xt, V), ZerosLike(logp), BroadcastToDims(Scalar(g, logp.DType(), NegInfinity), B, L, V))
	unmasked := BroadcastToDims(ExpandAxes(NotEqual(xt, Scalar(g, dtypes.Int32, maskIndex)), -1), B, L, V)
	return Where(unmasked, carry, logp)
}

// D3PMLogProbs is _d3pm_parameterization: a plain log-softmax, with the [MASK]
// logit pushed by −1e6 first when subsMasking is set.
func D3PMLogProbs(logits *Node, maskIndex int, subsMasking bool) *Node {
	if subsMasking {
		g := logits.Graph()
		V := logits.Shape().Dimensions[2]
		isMaskCol := Equal(vocabIota(g, V), Scalar(g, dtypes.Int32, maskIndex))
		logits = Add(logits, Where(isMaskCol, Scalar(g, logits.DType(), NegInfinity), Scalar(g, logits.DType(), 0)))
	}
	return LogSoftmax(logits, -1)
}

// perRow reshapes a [B] vector to [B, 1] for broadcasting over positions.
func perRow(v *Node) *Node { return ExpandAxes(v, 1) }

// PickFlat returns x[b, i, ids[b, i]] by a gather of B·L scalars, indexed by
// (b, i, ids[b, i]): B·L reads instead of a pass over [B, L, V] (Pick), and no
// reshape of x, which the Go backend copies when x has other consumers.
func PickFlat(x, ids *Node) *Node {
	dims := x.Shape().Dimensions
	B, L := dims[0], dims[1]
	g := x.Graph()
	at := func(axis int) *Node { return Iota(g, shapes.Make(dtypes.Int32, B, L, 1), axis) }
	idx := Concatenate([]*Node{at(0), at(1), ExpandAxes(ConvertDType(ids, dtypes.Int32), -1)}, 2) // [B, L, 3]
	return Gather(x, idx)
}

// ZeroMaskedLogits runs the backbone and returns SUBS's zero-masked logits (−1e6
// added at [MASK], diffusion.py: _subs_parameterization): folded into the output
// bias where the backbone has one (WithZeroMasking), added to the logits
// otherwise (DiMamba's lm_head has no bias).
func ZeroMaskedLogits(cfg backbone.Config, p backbone.Params, invFreq []float32, x, cond *Node, mode layers.Mode, drop *backbone.Dropout) *Node {
	if _, ok := p[outputBias]; ok {
		return backbone.Forward(cfg, WithZeroMasking(p, cfg.MaskIndex), invFreq, x, cond, mode, drop)
	}
	logits := backbone.Forward(cfg, p, invFreq, x, cond, mode, drop)
	g, V := logits.Graph(), cfg.Vocab
	isMask := Equal(Iota(g, shapes.Make(dtypes.Int32, 1, 1, V), 2), Scalar(g, dtypes.Int32, cfg.MaskIndex))
	bump := Where(isMask, BroadcastToDims(Scalar(g, logits.DType(), NegInfinity), 1, 1, V), Zeros(g, shapes.Make(logits.DType(), 1, 1, V)))
	return Add(logits, bump)
}

// outputBias is the DiT's output-layer bias, where zero masking is folded in.
const outputBias = "output_layer.linear.bias"

// WithZeroMasking returns params whose output bias has −1e6 added at [MASK]: the
// backbone's logits are then exactly SUBS's zero-masked logits (diffusion.py:
// _subs_parameterization), at the cost of a [V] add instead of a [B, L, V] one.
func WithZeroMasking(p map[string]*Node, maskIndex int) map[string]*Node {
	b := p[outputBias]
	g := b.Graph()
	V := b.Shape().Dimensions[0]
	isMask := Equal(Iota(g, shapes.Make(dtypes.Int32, V), 0), Scalar(g, dtypes.Int32, maskIndex))
	out := make(map[string]*Node, len(p))
	for k, v := range p {
		out[k] = v
	}
	out[outputBias] = Add(b, Where(isMask, Scalar(g, b.DType(), NegInfinity), ZerosLike(b)))
	return out
}

// SUBSTokenLogProbs gives, from zero-masked logits, log p_θ at the clean token and
// at [MASK] for every position ([B, L] each), without the [B, L, V] tensor of
// SUBSLogProbs. Carry-over makes both meaningless at unmasked positions, where
// every SUBS loss term is 0; callers mask them.
func SUBSTokenLogProbs(zeroMaskedLogits, x0 *Node, maskIndex int) (logpX0, logpMask *Node) {
	lse := layers.LogSumExp(zeroMaskedLogits)
	logpX0 = Sub(PickFlat(zeroMaskedLogits, x0), lse)
	maskCol := Slice(zeroMaskedLogits, AxisRange(), AxisRange(), AxisElem(maskIndex))
	logpMask = Sub(Reshape(maskCol, lse.Shape().Dimensions...), lse)
	return logpX0, logpMask
}

// SUBSLossAt is SUBSLoss from log p_θ(x0) at masked positions: −logp·σ'/expm1(σ)
// where z_t is masked, exactly 0 elsewhere.
func SUBSLossAt(logpX0, xt, sigma, dsigma *Node, maskIndex int) *Node {
	g := logpX0.Graph()
	weight := perRow(Div(dsigma, Expm1(sigma)))
	isMask := Equal(xt, Scalar(g, xt.DType(), maskIndex))
	return Where(isMask, Mul(Neg(logpX0), weight), ZerosLike(logpX0))
}

// SUBSLoss is the continuous-time SUBS NELBO per token (diffusion.py:
// _forward_pass_diffusion):
// loss[b, i] = −log p_θ(x0[b, i] | z_t) · σ'_b / expm1(σ_b); 0 wherever z_t is
// unmasked, since carry-over makes log p exactly 0 there.
func SUBSLoss(logp, x0, sigma, dsigma *Node) *Node {
	weight := Div(dsigma, Expm1(sigma))
	return Mul(Neg(Pick(logp, x0)), perRow(weight))
}

// D3PMLoss is diffusion.py: _d3pm_loss for T > 0, with t already on the grid,
// given log p_θ at the clean token and at [MASK] ([B, L] each):
// with dt = 1/T, t ← clamp(t, 0, 1−1e-4), α_t = 1 − t, α_s = 1 − (t − dt),
// p_m = exp(logp[mask]),
// term1 = (dt/t)·[log(α_t·p_m/t + 1) − logp[x0]],
// term2 = (1 − dt/t)·[log(α_t·p_m/t + 1) − log(α_s·p_m/(t − dt) + 1)],
// loss = T·(term1 + term2)·1[z_t = mask].
//
// One deliberate deviation: at t = 1/T the reference divides 0 by 0 in term2
// (whose coefficient is then 0) and returns NaN; here that log term is taken as 0.
func D3PMLoss(logpX0, logpMask, xt, t *Node, T int, maskIndex int) *Node {
	g := logpX0.Graph()
	dt := 1 / float64(T)
	tc := perRow(Min(t, Scalar(g, t.DType(), 1-1e-4)))
	tc = Max(tc, ZerosLike(tc))
	alphaT := OneMinus(tc)
	alphaS := OneMinus(AddScalar(tc, -dt))
	pm := Exp(logpMask)
	logNr := Log(OnePlus(Div(Mul(alphaT, pm), tc)))
	tMinusDt := AddScalar(tc, -dt)
	positive := GreaterThan(tMinusDt, ZerosLike(tMinusDt))
	safeDen := Where(positive, tMinusDt, OnesLike(tMinusDt))
	logDr2 := Where(BroadcastToDims(positive, pm.Shape().Dimensions...),
		Log(OnePlus(Div(Mul(alphaS, pm), safeDen))), ZerosLike(pm))
	coef1 := Mul(Reciprocal(tc), Scalar(g, t.DType(), dt))
	term1 := Mul(coef1, Sub(logNr, logpX0))
	term2 := Mul(OneMinus(coef1), Sub(logNr, logDr2))
	isMask := ConvertDType(Equal(xt, Scalar(g, xt.DType(), maskIndex)), logpX0.DType())
	return MulScalar(Mul(Add(term1, term2), isMask), float64(T))
}

// SEDDLogScore is diffusion.py: _sedd_parameterization:
// s = ℓ − log(e^σ − 1) − log(V − 1)
// (e^σ − 1 via expm1 when σ < 0.5), then s[z_t] = 0.
func SEDDLogScore(logits, xt, sigma *Node) *Node {
	g := logits.Graph()
	V := logits.Shape().Dimensions[2]
	esigm1 := Where(LessThan(sigma, Scalar(g, sigma.DType(), 0.5)), Expm1(sigma), AddScalar(Exp(sigma), -1))
	shift := AddScalar(Log(esigm1), math.Log(float64(V-1)))
	s := Sub(logits, ExpandAxes(shift, 1, 2))
	return Where(oneHotMask(xt, V), ZerosLike(s), s)
}

// ScoreEntropyLoss is σ'·_score_entropy (diffusion.py), on masked positions
// only: with r = 1/expm1(σ), entropy = Σ_{y≠mask} exp(s_y) − r·s[x0] + r(log r − 1).
func ScoreEntropyLoss(logScore, x0, xt, sigma, dsigma *Node, maskIndex int) *Node {
	g := logScore.Graph()
	V := logScore.Shape().Dimensions[2]
	r := perRow(Reciprocal(Expm1(sigma)))
	neg := Mul(r, Pick(logScore, x0))
	notMaskCol := NotEqual(vocabIota(g, V), Scalar(g, dtypes.Int32, maskIndex))
	score := Exp(logScore)
	pos := ReduceSum(Where(BroadcastToDims(notMaskCol, logScore.Shape().Dimensions...), score, ZerosLike(score)), -1)
	konst := Mul(r, AddScalar(Log(r), -1))
	entropy := Add(Sub(pos, neg), konst)
	isMask := Equal(xt, Scalar(g, xt.DType(), maskIndex))
	entropy = Where(isMask, entropy, ZerosLike(entropy))
	return Mul(perRow(dsigma), entropy)
}

// ARLoss is −log p(target) per token (diffusion.py: _loss); logp comes from the
// AR backbone.
func ARLoss(logp, target *Node) *Node { return Neg(Pick(logp, target)) }

// TokenMean is the batch loss of diffusion.py: _loss, Σ loss·mask / Σ mask
// (mask: float, 1 for real tokens).
func TokenMean(loss, tokenMask *Node) *Node {
	return Div(TokenSums(loss, tokenMask))
}

// TokenSums returns TokenMean's numerator Σ loss·mask and denominator Σ mask.
func TokenSums(loss, tokenMask *Node) (num, den *Node) {
	tokenMask = ConvertDType(tokenMask, loss.DType())
	return ReduceAllSum(Mul(loss, tokenMask)), ReduceAllSum(tokenMask)
}
