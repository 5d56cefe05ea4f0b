package diffusion

// The reference's training switches beyond the method (configs/config.yaml's
// training.* and subs_masking, read in diffusion.py: Diffusion.__init__):
// antithetic time sampling, the time floor, importance sampling, change of
// variables and D3PM's subs masking, with the time draws and noise they imply
// (diffusion.py: _sample_t, _forward_pass_diffusion; noise_schedule.py:
// importance_sampling_transformation).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// DefaultSamplingEps is the reference's training time floor
// (training.sampling_eps).
const DefaultSamplingEps = 1e-3

// Objective records the switches a model was trained with, so that evaluation
// does what training did. Train writes it into its checkpoints' manifests under
// ObjectiveParam when it differs from DefaultObjective.
type Objective struct {
	Antithetic         bool    `json:"antithetic"`
	SamplingEps        float64 `json:"sampling_eps"`
	ImportanceSampling bool    `json:"importance_sampling"`
	ChangeOfVariables  bool    `json:"change_of_variables"`
	SubsMasking        bool    `json:"subs_masking"`
	// RandomCrop: the training blocks held 2L tokens, each batch cropped to the
	// model's L at a random start (text8-crop; diffusion.py: _maybe_sub_sample,
	// which also crops validation rows of 2L). A property of the data, not of
	// Model.
	RandomCrop bool `json:"random_crop"`
}

// ObjectiveParam is the manifest params key of a checkpoint's Objective.
const ObjectiveParam = "objective"

// DefaultObjective is the reference's: antithetic t with the floor 1e-3, no
// importance sampling, no change of variables, no subs masking.
func DefaultObjective() Objective {
	return Objective{Antithetic: true, SamplingEps: DefaultSamplingEps}
}

// IsDefault reports whether o is DefaultObjective.
func (o Objective) IsDefault() bool { return o == DefaultObjective() }

// Validate names the bad switch.
func (o Objective) Validate() error {
	if !(o.SamplingEps > 0 && o.SamplingEps < 1) {
		return fmt.Errorf("sampling_eps %g: want 0 < eps < 1 (t = (1 − eps)·u + eps must stay above 0)", o.SamplingEps)
	}
	if o.ImportanceSampling && o.ChangeOfVariables {
		return fmt.Errorf("importance_sampling and change_of_variables cannot both be set (diffusion.py: _validate_configuration)")
	}
	return nil
}

// ObjectiveFromParams reads the Objective a checkpoint's manifest params record
// (DefaultObjective when there is none). Fields not given keep their defaults;
// an unknown field is refused, since ignoring a switch would evaluate another
// objective than the one trained.
func ObjectiveFromParams(params map[string]any) (Objective, error) {
	o := DefaultObjective()
	v, ok := params[ObjectiveParam]
	if !ok {
		return o, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return o, fmt.Errorf("params.%s: %w", ObjectiveParam, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("params.%s: %w", ObjectiveParam, err)
	}
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("params.%s: %w", ObjectiveParam, err)
	}
	return o, nil
}

// WithObjective returns m trained (or evaluated) with the switches of o.
func (m Model) WithObjective(o Objective) Model {
	m.Antithetic, m.SamplingEps = o.Antithetic, o.SamplingEps
	m.ImportanceSampling, m.ChangeOfVariables, m.SubsMasking = o.ImportanceSampling, o.ChangeOfVariables, o.SubsMasking
	return m
}

// Objective is the switches of m.
func (m Model) Objective() Objective {
	return Objective{Antithetic: m.Antithetic, SamplingEps: m.samplingEps(), ImportanceSampling: m.ImportanceSampling,
		ChangeOfVariables: m.ChangeOfVariables, SubsMasking: m.SubsMasking}
}

// samplingEps is the time floor, DefaultSamplingEps when unset.
func (m Model) samplingEps() float64 {
	if m.SamplingEps == 0 {
		return DefaultSamplingEps
	}
	return m.SamplingEps
}

// validateObjective enforces diffusion.py: _validate_configuration for the
// switches, plus what the noise schedules can do.
func (m Model) validateObjective() error {
	if err := m.Objective().Validate(); err != nil {
		return err
	}
	if m.SubsMasking && m.Param != D3PM {
		return fmt.Errorf("subs_masking applies to parameterization d3pm only, not %s (diffusion.py: _validate_configuration)", m.Param)
	}
	if !m.ImportanceSampling && !m.ChangeOfVariables {
		return nil
	}
	if m.Param == SEDD {
		return fmt.Errorf("parameterization sedd allows neither importance_sampling nor change_of_variables (diffusion.py: _validate_configuration)")
	}
	if _, _, err := LogMoveChanceBounds(m.Schedule); err != nil {
		return err
	}
	return nil
}

// LogMoveChanceBounds are f_T = log1p(−e^{−σ_max}) and f_0 = log1p(−e^{−σ_min}),
// the log move chance at the ends of the schedule (diffusion.py:
// _forward_pass_diffusion; noise_schedule.py: importance_sampling_transformation).
// Only the schedules whose reference class has sigma_min and sigma_max have
// them: loglinear (σ_max = σ(1) = −log ε, σ_min = ε + σ(0) = ε) and linear.
func LogMoveChanceBounds(s Schedule) (fT, f0 float64, err error) {
	var sigmaMin, sigmaMax float64
	switch sc := s.(type) {
	case LogLinear:
		sigmaMin, sigmaMax = sc.Eps, sc.Sigma(1)
	case Linear:
		sigmaMin, sigmaMax = sc.SigmaMin, sc.SigmaMax
	default:
		name := "none"
		if s != nil {
			name = s.Name()
		}
		return 0, 0, fmt.Errorf("noise schedule %s has no sigma_min/sigma_max for importance sampling or change of variables (the reference's LogLinearNoise and Linear have them)", name)
	}
	if !(sigmaMin > 0 && sigmaMax > sigmaMin) {
		return 0, 0, fmt.Errorf("noise schedule %s: importance sampling needs 0 < sigma_min %g < sigma_max %g", s.Name(), sigmaMin, sigmaMax)
	}
	return math.Log1p(-math.Exp(-sigmaMax)), math.Log1p(-math.Exp(-sigmaMin)), nil
}

// ImportanceSamplingTransform is the schedule's
// importance_sampling_transformation (noise_schedule.py): with
// σ̃(t) = −log1p(−exp(t·f_T + (1 − t)·f_0)), loglinear maps t to
// −expm1(−σ̃)/(1 − ε) and linear to (σ̃ − σ_min)/(σ_max − σ_min).
func ImportanceSamplingTransform(s Schedule, t float64) (float64, error) {
	fT, f0, err := LogMoveChanceBounds(s)
	if err != nil {
		return 0, err
	}
	sigma := -math.Log1p(-math.Exp(t*fT + (1-t)*f0))
	switch sc := s.(type) {
	case LogLinear:
		return -math.Expm1(-sigma) / (1 - sc.Eps), nil
	case Linear:
		return (sigma - sc.SigmaMin) / (sc.SigmaMax - sc.SigmaMin), nil
	}
	return 0, fmt.Errorf("noise schedule %s: no importance sampling transformation", s.Name())
}

// ISWeight is the constant weight −f_0 of the continuous SUBS loss under
// importance sampling or change of variables (diffusion.py:
// _forward_pass_diffusion returns log p_θ·log1p(−exp(−σ_min))): 6.908255 for
// loglinear. The reference uses −f_0 where the exact Jacobian is f_T − f_0.
func (m Model) ISWeight() (float64, error) {
	_, f0, err := LogMoveChanceBounds(m.Schedule)
	return -f0, err
}

// mustISWeight is ISWeight for graph building, where Validate has already
// refused a schedule without one.
func (m Model) mustISWeight() float64 {
	w, err := m.ISWeight()
	if err != nil {
		panic(fmt.Sprintf("diffusion: %v", err))
	}
	return w
}

// SUBSLossConstAt is the continuous-time SUBS loss under importance sampling
// or change of variables: −log p_θ(x0)·weight where z_t is masked (weight
// −f_0, see ISWeight), exactly 0 elsewhere.
func SUBSLossConstAt(logpX0, xt *Node, weight float64, maskIndex int) *Node {
	g := logpX0.Graph()
	isMask := Equal(xt, Scalar(g, xt.DType(), maskIndex))
	return Where(isMask, MulScalar(Neg(logpX0), weight), ZerosLike(logpX0))
}

// D3PMLogits runs the backbone for the d3pm parameterization: its raw logits,
// with the [MASK] logit pushed by −1e6 when SubsMasking is set
// (diffusion.py: _d3pm_parameterization; the log-softmax follows).
func (m Model) D3PMLogits(p backbone.Params, invFreq []float32, x, cond *Node, mode layers.Mode, drop *backbone.Dropout) *Node {
	if m.SubsMasking {
		return ZeroMaskedLogits(m.Backbone, p, invFreq, x, cond, mode, drop)
	}
	return backbone.Forward(m.Backbone, p, invFreq, x, cond, mode, drop)
}

// SampleTimes is _sample_t and the discretisation of _forward_pass_diffusion
// for one batch, given its B uniforms: stratified across the batch when
// Antithetic, floored at SamplingEps, importance-sampled when set, then put on
// the grid of T steps when T > 0.
func (m Model) SampleTimes(u []float32) []float32 {
	return m.finishTimes(SampleT(u, m.Antithetic, m.samplingEps()))
}

// StratumTimes is SampleTimes for draw j of K of every row (eval --mc-draws):
// each row's K draws are stratified among themselves when Antithetic (draw j in
// [j/K, (j+1)/K)), and independent otherwise.
func (m Model) StratumTimes(u []float32, j, K int) []float32 {
	eps := m.samplingEps()
	t := make([]float32, len(u))
	for i, x := range u {
		if m.Antithetic {
			x = stratum(x, j, K)
		}
		t[i] = float32(1-eps)*x + float32(eps)
	}
	return m.finishTimes(t)
}

// finishTimes applies importance sampling and the grid of T to floored times.
func (m Model) finishTimes(t []float32) []float32 {
	if m.ImportanceSampling {
		for i, x := range t {
			y, err := ImportanceSamplingTransform(m.Schedule, float64(x))
			if err != nil {
				panic(fmt.Sprintf("diffusion: %v", err)) // refused by Validate
			}
			t[i] = float32(y)
		}
	}
	if m.T > 0 {
		t = Discretize(t, m.T)
	}
	return t
}

// NoiseAt draws the masked rows for times t (one per row of B) from rng (B·L
// uniforms) and returns them with the σ(t), σ'(t) the loss reads. Under
// change of variables the move chance is exp(f_0 + t·(f_T − f_0)) itself
// (diffusion.py: _forward_pass_diffusion), and σ is the equivalent total noise
// −log(1 − move chance), σ' its derivative in t.
func (m Model) NoiseAt(x0 []int32, t []float32, B, L int, rng *rand.Rand) (xt []int32, sigma, dsigma []float32) {
	var mc []float32
	if m.ChangeOfVariables {
		sigma, dsigma, mc = m.changeOfVariables(t)
	} else {
		sigma, dsigma = SigmaDSigma(m.Schedule, t)
	}
	um := make([]float32, B*L)
	for i := range um {
		um[i] = rng.Float32()
	}
	mask := int32(m.Backbone.MaskIndex)
	if mc != nil {
		return MaskAt(x0, um, mc, mask), sigma, dsigma
	}
	return Mask(x0, um, sigma, mask), sigma, dsigma
}

// changeOfVariables is the move chance exp(f_0 + t·(f_T − f_0)) of each time,
// with the equivalent σ and σ'.
func (m Model) changeOfVariables(t []float32) (sigma, dsigma, mc []float32) {
	fT, f0, err := LogMoveChanceBounds(m.Schedule)
	if err != nil {
		panic(fmt.Sprintf("diffusion: %v", err)) // refused by Validate
	}
	sigma, dsigma, mc = make([]float32, len(t)), make([]float32, len(t)), make([]float32, len(t))
	for i, x := range t {
		c := math.Exp(f0 + float64(x)*(fT-f0))
		mc[i] = float32(c)
		sigma[i] = float32(-math.Log1p(-c))
		dsigma[i] = float32(c * (fT - f0) / (1 - c))
	}
	return sigma, dsigma, mc
}
