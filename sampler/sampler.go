package sampler

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
)

// Kind names a sampler.
type Kind string

const (
	// DDPM is the ancestral sampler (_ddpm_update): one denoiser call per step.
	DDPM Kind = "ddpm"
	// DDPMCache is the reference's cache (_ddpm_caching_update): the denoiser
	// output is reused only when no token of the whole batch changed.
	DDPMCache Kind = "ddpm_cache"
	// RowCache re-runs the denoiser only on the rows that changed since their last
	// evaluation; same samples as DDPMCache, fewer evaluations at batch > 1.
	RowCache Kind = "ddpm_rowcache"
	// Analytic is SEDD's Tweedie τ-leaping sampler: a time-conditioned SEDD model,
	// or a SUBS model through the reference's score conversion.
	Analytic Kind = "analytic"
	// AR samples the autoregressive baseline left to right.
	AR Kind = "ar"
)

// Kinds lists the samplers.
var Kinds = []Kind{DDPM, DDPMCache, RowCache, Analytic, AR}

// Options configure a run.
type Options struct {
	Kind  Kind
	Steps int // reverse steps (the reference's sampling.steps)
	// Eps is the end of the time grid linspace(1, Eps, Steps+1) (1e-5).
	Eps float64
	// NoiseRemoval runs the final denoising step at t = Eps (default on in the reference).
	NoiseRemoval bool
	// Final is the kind of that step: the reference's (the zero value), greedy
	// or ancestral.
	Final FinalStep
	// Draws is the precision of the categorical draws: Float32 (the zero value,
	// the reference's) or Float64.
	Draws Precision
	// Temperature divides the denoiser's (or the AR model's) logits before the
	// softmax; 0 or 1: off. Not for analytic.
	Temperature float64
	// TopP keeps, at each draw, the smallest set of most probable tokens whose
	// probability reaches TopP (nucleus sampling); 0 or 1: off. Not for analytic.
	TopP float64
	// Remasking chooses which masked positions a ddpm-family step unmasks:
	// random (the zero value, the reference's) or low-confidence.
	Remasking Remasking
}

// Validate checks the options against the model before any compute.
func (o Options) Validate(m diffusion.Model, length int) error {
	known := false
	for _, k := range Kinds {
		known = known || o.Kind == k
	}
	if !known {
		names := make([]string, len(Kinds))
		for i, k := range Kinds {
			names[i] = string(k)
		}
		return fmt.Errorf("unknown sampler %q (known: %s)", o.Kind, strings.Join(names, ", "))
	}
	switch {
	case o.Kind == AR && m.Param != diffusion.ARP:
		return fmt.Errorf("sampler ar needs an AR model, this one is %s", m.Param)
	case o.Kind != AR && m.Param == diffusion.ARP:
		return fmt.Errorf("sampler %s needs a diffusion model; an AR model samples with --sampler ar", o.Kind)
	case o.Kind == Analytic && m.Param == diffusion.SEDD && !m.TimeConditioning:
		return fmt.Errorf("sampler analytic needs a time-conditioned SEDD model (this one has time_conditioning=false)")
	case o.Kind == Analytic && m.Param != diffusion.SEDD && m.Param != diffusion.SUBS:
		return fmt.Errorf("sampler analytic needs a SEDD or SUBS model, this one is %s", m.Param)
	case o.Kind != Analytic && o.Kind != AR && m.Param == diffusion.SEDD:
		return fmt.Errorf("sampler %s needs a SUBS model; SEDD samples with --sampler analytic", o.Kind)
	case o.Kind != AR && o.Steps < 1:
		return fmt.Errorf("steps must be >= 1, got %d", o.Steps)
	case o.Kind != AR && (o.Eps <= 0 || o.Eps >= 1):
		return fmt.Errorf("sampling eps %g must be in (0, 1)", o.Eps)
	case length > m.Backbone.Length && m.Backbone.Length > 0:
		return fmt.Errorf("sequence length %d exceeds the model length %d", length, m.Backbone.Length)
	}
	return o.validateOptions(m)
}

// validateOptions checks the draw, remasking and final-step options against
// the sampler and the model.
func (o Options) validateOptions(m diffusion.Model) error {
	if err := o.validateDraws(); err != nil {
		return err
	}
	ddpmFamily := o.Kind == DDPM || o.Kind == DDPMCache || o.Kind == RowCache
	switch {
	case o.Kind == Analytic && (o.tempered() || o.nucleus()):
		return fmt.Errorf("top-p and temperature apply to the ddpm-family and ar samplers, not analytic")
	case o.Remasking == LowConfidence && !ddpmFamily:
		return fmt.Errorf("low-confidence remasking applies to the ddpm-family samplers, not %s", o.Kind)
	case o.Remasking == LowConfidence && m.Param != diffusion.SUBS:
		return fmt.Errorf("low-confidence remasking needs a SUBS model, this one is %s", m.Param)
	}
	return nil
}

// Uniforms supplies the uniform draws of categorical sampling, in the order the
// reference draws them ([B, L, V] per draw, row-major). A nil Uniforms means the
// seeded in-graph generator.
type Uniforms interface {
	Next(shape []int) ([]float32, error)
}

// Result of a run.
type Result struct {
	Tokens []int32 // [B·L] row-major
	B, L   int
	// NFE counts denoiser evaluations per row (the final noise removal included).
	NFE []int
}

// Sampler runs one model with one set of weights.
type Sampler struct {
	backend compute.Backend
	model   diffusion.Model
	params  []*tensors.Tensor
	invFreq []float32
	rng     *tensors.Tensor
	hostRNG *rand.Rand // the unmasking decisions of the two-stage ddpm update
	draws   Uniforms
	execs   map[string]*Exec
}

// New prepares a sampler; seed drives the in-graph generator, draws (if not nil)
// replaces it.
func New(b compute.Backend, m diffusion.Model, w *backbone.Weights, seed int64, draws Uniforms) (*Sampler, error) {
	rng, err := RNGStateFromSeed(seed)
	if err != nil {
		return nil, err
	}
	return &Sampler{backend: b, model: m, params: w.Tensors(), invFreq: w.RotaryInvFreqOrDefault(),
		rng: rng, hostRNG: rand.New(rand.NewPCG(uint64(seed), 0x756e6d61736b)), draws: draws, execs: map[string]*Exec{}}, nil
}

// exec returns (building once) an executable whose graph gets the parameters first.
func (s *Sampler) exec(name string, fn func(p backbone.Params, in []*Node) []*Node) *Exec {
	if e, ok := s.execs[name]; ok {
		return e
	}
	n := len(s.params)
	e := MustNewExec(s.backend, func(g *Graph, in []*Node) []*Node {
		return fn(backbone.ParamsFromNodes(s.model.Backbone, in[:n]), in[n:])
	}).WithName("sampler_" + name)
	s.execs[name] = e
	return e
}

func (s *Sampler) call(name string, fn func(p backbone.Params, in []*Node) []*Node, args ...any) ([]*tensors.Tensor, error) {
	all := make([]any, 0, len(s.params)+len(args))
	for _, p := range s.params {
		all = append(all, p)
	}
	return s.exec(name, fn).Call(append(all, args...)...)
}

// draw returns the uniform argument of an update graph and whether it is host-fed;
// for the in-graph generator the argument is the RNG state.
func (s *Sampler) draw(shape []int) (any, error) {
	if s.draws == nil {
		return s.rng, nil
	}
	u, err := s.draws.Next(shape)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(u, shape...), nil
}

// uniformNode turns the draw argument into uniforms (and the next RNG state):
// float32 ones as the reference draws them, or float64 ones for Float64 draws
// (host-fed uniforms are float32 and only converted).
func (s *Sampler) uniformNode(arg *Node, shape []int, prec Precision) (u, rngOut *Node) {
	if s.draws != nil {
		if prec == Float64 {
			return ConvertDType(arg, dtypes.Float64), nil
		}
		return arg, nil
	}
	rng, u := uniforms(arg, prec.dtype(), shape...)
	return u, rng
}

// withRNG appends the new RNG state to outputs when the generator is in-graph, and
// stores it after the call.
func (s *Sampler) keepRNG(out []*tensors.Tensor) []*tensors.Tensor {
	if s.draws == nil {
		s.rng = out[len(out)-1]
		return out[:len(out)-1]
	}
	return out
}

func appendRNG(out []*Node, rng *Node) []*Node {
	if rng != nil {
		return append(out, rng)
	}
	return out
}

// Sample runs the reverse process from x (the prior: all [MASK], or a template
// whose unmasked tokens are kept — infilling), B rows of L tokens.
func (s *Sampler) Sample(ctx context.Context, opts Options, x []int32, B, L int, progress func(step, total int)) (*Result, error) {
	if err := opts.Validate(s.model, L); err != nil {
		return nil, err
	}
	if len(x) != B*L {
		return nil, fmt.Errorf("sampler: %d initial tokens for %d x %d", len(x), B, L)
	}
	if opts.Remasking == LowConfidence && s.draws != nil {
		return nil, fmt.Errorf("sampler: low-confidence remasking draws with the in-graph generator, not replayed uniforms")
	}
	if opts.Kind == AR {
		return s.sampleAR(ctx, opts, x, B, L, progress)
	}
	r := &Result{Tokens: append([]int32(nil), x...), B: B, L: L, NFE: make([]int, B)}
	times := Linspace(1, float32(opts.Eps), opts.Steps+1)
	dt := (1 - opts.Eps) / float64(opts.Steps)
	var err error
	switch opts.Kind {
	case Analytic:
		err = s.runAnalytic(ctx, opts, r, times, dt, progress)
	default:
		ancestral := opts.NoiseRemoval && opts.Final == FinalAncestral
		var at float32
		if ancestral {
			at = times[len(times)-1]
		}
		err = s.runDDPM(ctx, opts, r, times[:opts.Steps], dt, at, progress)
		if err == nil && opts.NoiseRemoval && !ancestral {
			err = s.removeNoise(r, s.condFor(times[len(times)-1], B))
		}
	}
	if err != nil {
		return nil, err
	}
	keepGiven(r.Tokens, x, int32(s.model.Backbone.MaskIndex))
	return r, nil
}

// keepGiven restores the tokens the prior gave (prompts, templates): every
// update keeps them (the reference's copy_flag, SUBS carry-over), but a d3pm
// model's final argmax re-decodes every position.
func keepGiven(tokens, prior []int32, mask int32) {
	for i, tok := range prior {
		if tok != mask {
			tokens[i] = tok
		}
	}
}

// condFor is the σ the backbone sees: σ(t), or zeros without time conditioning.
func (s *Sampler) condFor(t float32, B int) []float32 {
	c := make([]float32, B)
	if s.model.TimeConditioning {
		sig := float32(s.model.Schedule.Sigma(float64(t)))
		for i := range c {
			c[i] = sig
		}
	}
	return c
}

func fill(v float32, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// moveChances returns (mc_t, mc_s) for a step from t to s = t − dt in float32 as
// the reference computes them: ddpm via 1 − exp(−σ); the caches use t and t − dt
// directly (loglinear only, where the (1−ε) factor cancels).
func (s *Sampler) moveChances(kind Kind, t float32, dt float64) (float32, float32) {
	_, loglinear := s.model.Schedule.(diffusion.LogLinear)
	if kind != DDPM && loglinear {
		return t, t - float32(dt)
	}
	ts := t - float32(dt)
	mc := func(x float32) float32 {
		sig := float32(s.model.Schedule.Sigma(float64(x)))
		return 1 - float32(math.Exp(float64(-sig)))
	}
	return mc(t), mc(ts)
}

// runDDPM runs one ddpm-family update from each t in times to t − dt and, if
// ancestralAt > 0, one more from t = ancestralAt to 0 (mc_s = 0: every
// remaining mask is drawn; DUO's ancestral noise removal), with the same cache.
func (s *Sampler) runDDPM(ctx context.Context, opts Options, r *Result, times []float32, dt float64, ancestralAt float32, progress func(int, int)) error {
	cache := newRowCache(r.B)
	defer func() {
		for b := range r.NFE {
			r.NFE[b] += cache.nfe[b]
		}
	}()
	for i, t := range times {
		if err := ctx.Err(); err != nil {
			return err
		}
		mct, mcs := s.moveChances(opts.Kind, t, dt)
		if err := s.ddpmStep(opts, cache, r, t, mct, mcs); err != nil {
			return fmt.Errorf("sampler step %d: %w", i, err)
		}
		if progress != nil {
			progress(i+1, len(times))
		}
	}
	if ancestralAt <= 0 {
		return nil
	}
	mct, _ := s.moveChances(opts.Kind, ancestralAt, dt)
	if err := s.ddpmStep(opts, cache, r, ancestralAt, mct, 0); err != nil {
		return fmt.Errorf("sampler noise removal: %w", err)
	}
	return nil
}

// ddpmStep is one ddpm-family update at time t with move chances mc_t, mc_s.
func (s *Sampler) ddpmStep(opts Options, cache *rowCache, r *Result, t, mct, mcs float32) error {
	B, L, V := r.B, r.L, s.model.Backbone.Vocab
	probs, err := s.denoise(opts, cache, r, t)
	if err != nil {
		return err
	}
	var next []int32
	switch {
	case opts.Remasking == LowConfidence:
		next, err = s.lowConfidenceUpdate(opts, r.Tokens, probs, mct, mcs, B, L)
	case s.twoStage():
		next, err = s.twoStageUpdate(opts, r.Tokens, probs, mct, mcs, B, L)
	default:
		next, err = s.denseUpdate(opts, r.Tokens, probs, mct, mcs, B, L, V, s.model.Backbone.MaskIndex)
	}
	if err != nil {
		return err
	}
	cache.afterStep(opts.Kind, r.Tokens, next, L, s.model.TimeConditioning)
	r.Tokens = next
	return nil
}

// denseUpdate is the reference's update as one graph: q over the whole [B, L, V]
// (the draws recorded from the reference, or the in-graph generator), x' ~ q,
// unmasked tokens kept.
func (s *Sampler) denseUpdate(opts Options, tokens []int32, probs *tensors.Tensor, mct, mcs float32, B, L, V, mask int) ([]int32, error) {
	u, err := s.draw([]int{B, L, V})
	if err != nil {
		return nil, err
	}
	out, err := s.call("ddpm_update"+opts.drawSuffix(), func(_ backbone.Params, in []*Node) []*Node {
		// Shapes come from the inputs: one executable serves every batch size.
		uu, rng := s.uniformNode(in[4], in[1].Shape().Dimensions, opts.Draws)
		p, mct, mcs := drawWeights(in[1], opts), in[2], in[3]
		if p.DType() != mct.DType() {
			mct, mcs = ConvertDType(mct, p.DType()), ConvertDType(mcs, p.DType())
		}
		return appendRNG([]*Node{ddpmUpdate(in[0], p, mct, mcs, uu, mask)}, rng)
	}, tensors.FromFlatDataAndDimensions(tokens, B, L), probs,
		tensors.FromFlatDataAndDimensions(fill(mct, B), B), tensors.FromFlatDataAndDimensions(fill(mcs, B), B), u)
	if err != nil {
		return nil, err
	}
	out = s.keepRNG(out)
	return tensors.MustCopyFlatData[int32](out[0]), nil
}

// twoStage says whether the ddpm update may draw in two stages: with the
// in-graph generator (not replaying the reference's recorded draws) and SUBS
// probabilities, whose [MASK] entry is 0 and the rest sum to 1.
func (s *Sampler) twoStage() bool { return s.draws == nil && s.model.Param != diffusion.D3PM }

// twoStageUpdate draws the same distribution as the reference's update, x' ~ q
// with q_v = p_v·(mc_t − mc_s) and q_mask = mc_s, without touching [B, L, V]
// on steps where nothing unmasks. A masked position leaves [MASK] with
// probability Σ_{v≠mask} q_v / Σ q = (mc_t − mc_s)/mc_t (p sums to 1 off [MASK]),
// drawn here on the host; only the positions that leave draw their token from
// p, in a graph over those rows alone. With many steps per token most steps
// unmask nothing and cost no graph call at all.
func (s *Sampler) twoStageUpdate(opts Options, tokens []int32, probs *tensors.Tensor, mct, mcs float32, B, L int) ([]int32, error) {
	mask := int32(s.model.Backbone.MaskIndex)
	leave := float64(mct-mcs) / float64(mct)
	var pos []int32 // flat b·L + l of the positions that unmask
	for i, tok := range tokens {
		if tok == mask && s.hostRNG.Float64() < leave {
			pos = append(pos, int32(i))
		}
	}
	next := append([]int32(nil), tokens...)
	if len(pos) == 0 {
		return next, nil
	}
	picked, _, err := s.pick(opts, probs, pos, false)
	if err != nil {
		return nil, err
	}
	for j, p := range pos {
		next[p] = picked[j]
	}
	return next, nil
}

// pick draws a token at each flat position pos (b·L + l) from its row of
// probs [B, L, V], under the draw options, in a graph over those rows alone;
// with confidence it also returns each drawn token's probability under the
// distribution it was drawn from.
func (s *Sampler) pick(opts Options, probs *tensors.Tensor, pos []int32, confidence bool) ([]int32, []float64, error) {
	k := 1 // padded to a power of two: few distinct shapes, few compilations
	for k < len(pos) {
		k *= 2
	}
	idx := make([]int32, k)
	copy(idx, pos)
	name := fmt.Sprintf("ddpm_pick_%d", k)
	if confidence {
		name = fmt.Sprintf("ddpm_pick_conf_%d", k)
	}
	out, err := s.call(name+opts.drawSuffix(), func(_ backbone.Params, in []*Node) []*Node {
		dims := in[0].Shape().Dimensions
		V := dims[2]
		rows := Gather(Reshape(in[0], dims[0]*dims[1], V), ExpandAxes(in[1], -1)) // [k, V]
		rows = drawWeights(rows, opts)
		rng, u := uniforms(in[2], rows.DType(), k, V)
		tok := drawNode(rows, u)
		if !confidence {
			return []*Node{tok, rng}
		}
		return []*Node{tok, rng, ConvertDType(pickProb(rows, tok), dtypes.Float64)}
	}, probs, tensors.FromFlatDataAndDimensions(idx, k), s.rng)
	if err != nil {
		return nil, nil, err
	}
	s.rng = out[1]
	picked := tensors.MustCopyFlatData[int32](out[0])
	if !confidence {
		return picked, nil, nil
	}
	return picked, tensors.MustCopyFlatData[float64](out[2]), nil
}

// removeNoise is the ddpm noise-removal step: x ← argmax model_logp(x, cond).
func (s *Sampler) removeNoise(r *Result, cond []float32) error {
	out, err := s.call("denoiser_argmax", func(p backbone.Params, in []*Node) []*Node {
		return []*Node{denoiserArgmax(s.model, p, s.invFreq, in[0], in[1])}
	}, tensors.FromFlatDataAndDimensions(r.Tokens, r.B, r.L), tensors.FromFlatDataAndDimensions(cond, r.B))
	if err != nil {
		return fmt.Errorf("sampler noise removal: %w", err)
	}
	r.Tokens = tensors.MustCopyFlatData[int32](out[0])
	for b := range r.NFE {
		r.NFE[b]++
	}
	return nil
}

// SampleSemiAR is semi-autoregressive generation (diffusion.py:
// sample_subs_guidance): numStrides+1 windows of the model length L; each window starts with the last
// L − stride tokens of the previous one, runs steps+1 cached updates on the grid
// t = 1 − i/steps down to t = 0 (which forces every mask to fill), then an argmax
// at σ = 0, and emits its first stride tokens. The output has L + numStrides·stride
// tokens per row. opts.Kind is ddpm_cache (the reference) or ddpm_rowcache;
// opts.Steps, the draw options and the remasking apply to every window (Eps
// and the noise removal do not: every window ends at t = 0 and an argmax).
// canvas, if not nil, holds B rows of the output's length with the tokens to
// keep (prompts) and [MASK] elsewhere: each window starts from its part of it.
func (s *Sampler) SampleSemiAR(ctx context.Context, opts Options, canvas []int32, B, L, stride, numStrides int, progress func(int, int)) (*Result, error) {
	kind := opts.Kind
	if kind != DDPMCache && kind != RowCache {
		return nil, fmt.Errorf("semi-autoregressive sampling uses a caching sampler (ddpm_cache or ddpm_rowcache), not %s", kind)
	}
	check := opts
	check.Eps = 0.5
	if err := check.Validate(s.model, L); err != nil {
		return nil, err
	}
	if stride < 1 || stride > L || numStrides < 0 {
		return nil, fmt.Errorf("stride length %d must be in [1, %d] and num strides %d >= 0", stride, L, numStrides)
	}
	outL := L + numStrides*stride
	if canvas != nil && len(canvas) != B*outL {
		return nil, fmt.Errorf("sampler: a canvas of %d tokens for %d x %d", len(canvas), B, outL)
	}
	steps := opts.Steps
	dt := 1 / float64(steps)
	times := make([]float32, steps+1)
	for i := range times {
		times[i] = float32(1 - float64(i)*dt)
	}
	mask := int32(s.model.Backbone.MaskIndex)
	out := &Result{Tokens: make([]int32, B*outL), B: B, L: outL, NFE: make([]int, B)}
	var target []int32 // [B, L-stride]
	emitted := 0
	emit := func(rows []int32, width int) {
		for b := 0; b < B; b++ {
			copy(out.Tokens[b*outL+emitted:], rows[b*width:(b+1)*width])
		}
		emitted += width
	}
	for w := 0; w <= numStrides; w++ {
		r := &Result{Tokens: make([]int32, B*L), B: B, L: L, NFE: make([]int, B)}
		for b := 0; b < B; b++ {
			row := r.Tokens[b*L : (b+1)*L]
			for i := range row {
				row[i] = mask
			}
			if canvas != nil {
				copy(row, canvas[b*outL+w*stride:b*outL+w*stride+L])
			}
		}
		given := append([]int32(nil), r.Tokens...) // the canvas's tokens alone
		for b := 0; b < B && target != nil; b++ {
			copy(r.Tokens[b*L:], target[b*(L-stride):(b+1)*(L-stride)])
		}
		if err := s.runDDPM(ctx, opts, r, times, dt, 0, nil); err != nil {
			return nil, err
		}
		if err := s.removeNoise(r, make([]float32, B)); err != nil {
			return nil, err
		}
		keepGiven(r.Tokens, given, mask)
		first := make([]int32, 0, B*stride)
		target = make([]int32, 0, B*(L-stride))
		for b := 0; b < B; b++ {
			first = append(first, r.Tokens[b*L:b*L+stride]...)
			target = append(target, r.Tokens[b*L+stride:(b+1)*L]...)
			out.NFE[b] += r.NFE[b]
		}
		emit(first, stride)
		if progress != nil {
			progress(w+1, numStrides+1)
		}
	}
	emit(target, L-stride)
	return out, nil
}

// denoise returns x_θ for the current tokens, using and refreshing the cache as
// the sampler kind allows.
func (s *Sampler) denoise(opts Options, c *rowCache, r *Result, t float32) (*tensors.Tensor, error) {
	B, L := r.B, r.L
	stale := c.staleRows(opts.Kind)
	if len(stale) == 0 {
		return c.probs, nil
	}
	fn := func(p backbone.Params, in []*Node) []*Node {
		if opts.tempered() {
			return []*Node{temperedProbs(s.model, p, s.invFreq, in[0], in[1], opts.Temperature)}
		}
		return []*Node{denoiserProbs(s.model, p, s.invFreq, in[0], in[1])}
	}
	suffix := ""
	if opts.tempered() {
		suffix = fmt.Sprintf("_t%g", opts.Temperature)
	}
	if len(stale) == B {
		out, err := s.call(fmt.Sprintf("denoise_%d", B)+suffix, fn,
			tensors.FromFlatDataAndDimensions(r.Tokens, B, L), tensors.FromFlatDataAndDimensions(s.condFor(t, B), B))
		if err != nil {
			return nil, fmt.Errorf("denoiser: %w", err)
		}
		c.store(out[0], stale)
		return c.probs, nil
	}
	// Per-row cache: evaluate only the stale rows, then merge them in.
	k := len(stale)
	rows := make([]int32, 0, k*L)
	for _, b := range stale {
		rows = append(rows, r.Tokens[b*L:(b+1)*L]...)
	}
	out, err := s.call(fmt.Sprintf("denoise_%d", k)+suffix, fn,
		tensors.FromFlatDataAndDimensions(rows, k, L), tensors.FromFlatDataAndDimensions(s.condFor(t, k), k))
	if err != nil {
		return nil, fmt.Errorf("denoiser: %w", err)
	}
	sel := make([]bool, B)
	idx := make([]int32, B)
	for j, b := range stale {
		sel[b], idx[b] = true, int32(j)
	}
	merged, err := s.call("merge_rows", func(_ backbone.Params, in []*Node) []*Node {
		return []*Node{mergeRows(in[0], in[1], in[2], in[3])}
	}, c.probs, out[0], tensors.FromFlatDataAndDimensions(sel, B), tensors.FromFlatDataAndDimensions(idx, B))
	if err != nil {
		return nil, fmt.Errorf("merge cached rows: %w", err)
	}
	c.store(merged[0], stale)
	return c.probs, nil
}

func (s *Sampler) runAnalytic(ctx context.Context, opts Options, r *Result, times []float32, dt float64, progress func(int, int)) error {
	B, L, V := r.B, r.L, s.model.Backbone.Vocab
	mask := s.model.Backbone.MaskIndex
	step := func(t, dsig float32, final bool) error {
		if final && opts.Final == FinalGreedy {
			return s.analyticGreedy(r, t)
		}
		sigma := float32(s.model.Schedule.Sigma(float64(t)))
		u, err := s.draw([]int{B, L, V})
		if err != nil {
			return err
		}
		name := "analytic_update"
		if final {
			name = "analytic_denoise"
		}
		out, err := s.call(name+opts.drawSuffix(), func(p backbone.Params, in []*Node) []*Node {
			sc := score(s.model, p, s.invFreq, in[0], in[1])
			uu, rng := s.uniformNode(in[3], sc.Shape().Dimensions, opts.Draws)
			return appendRNG([]*Node{analyticUpdate(in[0], sc, in[2], uu, mask, final)}, rng)
		}, tensors.FromFlatDataAndDimensions(r.Tokens, B, L), tensors.FromFlatDataAndDimensions(fill(sigma, B), B),
			tensors.FromFlatDataAndDimensions(fill(dsig, B), B), u)
		if err != nil {
			return fmt.Errorf("analytic step: %w", err)
		}
		out = s.keepRNG(out)
		r.Tokens = tensors.MustCopyFlatData[int32](out[0])
		for b := range r.NFE {
			r.NFE[b]++
		}
		return nil
	}
	for i := 0; i < opts.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := times[i]
		curr := float32(s.model.Schedule.Sigma(float64(t)))
		next := float32(s.model.Schedule.Sigma(float64(t - float32(dt))))
		if err := step(t, curr-next, false); err != nil {
			return err
		}
		if progress != nil {
			progress(i+1, opts.Steps)
		}
	}
	if opts.NoiseRemoval {
		t := times[len(times)-1]
		return step(t, float32(s.model.Schedule.Sigma(float64(t))), true)
	}
	return nil
}

// analyticGreedy is the greedy final step of the analytic sampler: the argmax
// of _denoiser_update's probabilities at t (one denoiser evaluation).
func (s *Sampler) analyticGreedy(r *Result, t float32) error {
	B, L := r.B, r.L
	sigma := float32(s.model.Schedule.Sigma(float64(t)))
	out, err := s.call("analytic_greedy", func(p backbone.Params, in []*Node) []*Node {
		sc := score(s.model, p, s.invFreq, in[0], in[1])
		return []*Node{ArgMax(analyticProbs(in[0], sc, in[1], s.model.Backbone.MaskIndex, true), -1, dtypes.Int32)}
	}, tensors.FromFlatDataAndDimensions(r.Tokens, B, L), tensors.FromFlatDataAndDimensions(fill(sigma, B), B))
	if err != nil {
		return fmt.Errorf("analytic greedy step: %w", err)
	}
	r.Tokens = tensors.MustCopyFlatData[int32](out[0])
	for b := range r.NFE {
		r.NFE[b]++
	}
	return nil
}

// sampleAR is _ar_sampler: position 0 holds the given BOS; every later position
// is argmax(log p + Gumbel) given the prefix. Gumbel noise g = −log(−log u).
// Positions x gives (a prompt) are kept; a step where every row's next
// position is given runs no model. The draw options apply to log p and g.
func (s *Sampler) sampleAR(ctx context.Context, opts Options, x []int32, B, L int, progress func(int, int)) (*Result, error) {
	V := s.model.Backbone.Vocab
	mask := int32(s.model.Backbone.MaskIndex)
	r := &Result{Tokens: append([]int32(nil), x...), B: B, L: L, NFE: make([]int, B)}
	for i := 0; i < L-1; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !anyFree(x, mask, B, L, i+1) {
			continue
		}
		u, err := s.draw([]int{B, V})
		if err != nil {
			return nil, err
		}
		out, err := s.call("ar_next"+opts.drawSuffix(), func(p backbone.Params, in []*Node) []*Node {
			uu, rng := s.uniformNode(in[2], []int{in[0].Shape().Dimensions[0], V}, opts.Draws)
			gumbel := Neg(Log(Neg(Log(AddScalar(uu, 1e-20)))))
			return appendRNG([]*Node{arNext(s.model, p, s.invFreq, in[0], in[1], gumbel, opts)}, rng)
		}, tensors.FromFlatDataAndDimensions(r.Tokens, B, L), tensors.FromScalar(int32(i)), u)
		if err != nil {
			return nil, fmt.Errorf("ar step %d: %w", i, err)
		}
		out = s.keepRNG(out)
		next := tensors.MustCopyFlatData[int32](out[0])
		for b := 0; b < B; b++ {
			if x[b*L+i+1] == mask {
				r.Tokens[b*L+i+1] = next[b]
			}
			r.NFE[b]++
		}
		if progress != nil {
			progress(i+1, L-1)
		}
	}
	return r, nil
}

// anyFree reports whether some row leaves position i to the sampler.
func anyFree(x []int32, mask int32, B, L, i int) bool {
	for b := 0; b < B; b++ {
		if x[b*L+i] == mask {
			return true
		}
	}
	return false
}
