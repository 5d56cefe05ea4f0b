package diffusion

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// Model is one MDLM training objective: a backbone, a parameterization, the time
// discretisation T (0 = continuous time) and whether the backbone sees σ.
type Model struct {
	Backbone         backbone.Config
	Param            Parameterization
	T                int
	TimeConditioning bool
	Schedule         Schedule
	// SamplingEps is the training time floor (training.sampling_eps, 1e-3;
	// 0 means 1e-3).
	SamplingEps float64
	// Antithetic stratifies the times of a batch (training.antithetic_sampling,
	// on in the reference); see SampleT.
	Antithetic bool
	// ImportanceSampling draws t so that the log move chance is uniform and
	// weights the continuous SUBS loss by −f_0 (training.importance_sampling);
	// ChangeOfVariables conditions on t and masks with that move chance
	// directly (training.change_of_variables). See objective.go.
	ImportanceSampling, ChangeOfVariables bool
	// SubsMasking zeroes D3PM's [MASK] probability (subs_masking;
	// diffusion.py: _d3pm_parameterization).
	SubsMasking bool
}

// Validate enforces the reference's combinations (diffusion.py:
// _validate_configuration).
func (m Model) Validate() error {
	if err := m.Backbone.Validate(); err != nil {
		return err
	}
	switch m.Param {
	case SUBS:
	case D3PM:
		if m.T <= 0 {
			return fmt.Errorf("parameterization d3pm needs T > 0 (got T=%d)", m.T)
		}
	case SEDD:
		if !m.TimeConditioning {
			return fmt.Errorf("parameterization sedd needs time conditioning (log(expm1(0)) = -inf otherwise)")
		}
		if m.T > 0 {
			return fmt.Errorf("parameterization sedd is continuous-time only (got T=%d)", m.T)
		}
	case ARP:
		if m.Backbone.Arch != backbone.AR && m.Backbone.Arch != backbone.GPT2 {
			return fmt.Errorf("parameterization ar needs the ar or gpt2 backbone, not %q", m.Backbone.Arch)
		}
		return nil
	default:
		return fmt.Errorf("unknown parameterization %q (known: subs, d3pm, sedd, ar)", m.Param)
	}
	if m.Backbone.Arch != backbone.DiT && m.Backbone.Arch != backbone.DiMamba {
		return fmt.Errorf("parameterization %s needs the dit or dimamba backbone, not %q", m.Param, m.Backbone.Arch)
	}
	if m.T < 0 {
		return fmt.Errorf("discrete time steps: --T %d must be >= 0", m.T)
	}
	return m.validateObjective()
}

// DiffusionInputs are the host-prepared, per-batch inputs of a diffusion loss.
type DiffusionInputs struct {
	X0, XT        *Node // [B, L] int32
	T             *Node // [B] float32 (on the grid when T > 0)
	Sigma, DSigma *Node // [B] float32, σ(t) and σ'(t)
}

// as converts the float inputs to the model's dtype.
func (in DiffusionInputs) as(dt dtypes.DType) DiffusionInputs {
	in.T, in.Sigma, in.DSigma = ConvertDType(in.T, dt), ConvertDType(in.Sigma, dt), ConvertDType(in.DSigma, dt)
	return in
}

// PerTokenLoss runs the backbone and returns the per-token loss [B, L] of
// diffusion.py: _forward_pass_diffusion (continuous SUBS, _d3pm_loss or
// _score_entropy). The backbone sees σ only when the model is time-conditioned.
// mode says whether a gradient will be taken; drop may be nil (no dropout).
func (m Model) PerTokenLoss(p backbone.Params, invFreq []float32, in DiffusionInputs, mode layers.Mode, drop *backbone.Dropout) *Node {
	in = in.as(p[m.Backbone.EmbeddingName()].DType())
	cond := in.Sigma
	if m.ChangeOfVariables { // diffusion.py: _forward_pass_diffusion conditions on raw t
		cond = in.T
	}
	if !m.TimeConditioning {
		cond = ZerosLike(in.Sigma)
	}
	mask := m.Backbone.MaskIndex
	switch m.Param {
	case SEDD:
		logits := backbone.Forward(m.Backbone, p, invFreq, in.XT, cond, mode, drop)
		return ScoreEntropyLoss(SEDDLogScore(logits, in.XT, in.Sigma), in.X0, in.XT, in.Sigma, in.DSigma, mask)
	case D3PM:
		logits := m.D3PMLogits(p, invFreq, in.XT, cond, mode, drop)
		logpX0, logpMask := SUBSTokenLogProbs(logits, in.X0, mask) // log-softmax of the D3PM logits
		return m.d3pmWithReconstruction(p, invFreq, logpX0, logpMask, in, mode, drop)
	}
	// SUBS: zero masking folded into the output bias; carry-over makes the loss 0
	// wherever z_t is unmasked, so only log p_θ(x0) at masked positions is needed.
	logits := ZeroMaskedLogits(m.Backbone, p, invFreq, in.XT, cond, mode, drop)
	logpX0, logpMask := SUBSTokenLogProbs(logits, in.X0, mask)
	if m.T > 0 {
		return D3PMLoss(logpX0, logpMask, in.XT, in.T, m.T, mask) // SUBS: reconstruction term is 0
	}
	if m.ImportanceSampling || m.ChangeOfVariables {
		return SUBSLossConstAt(logpX0, in.XT, m.mustISWeight(), mask)
	}
	return SUBSLossAt(logpX0, in.XT, in.Sigma, in.DSigma, mask)
}

// d3pmWithReconstruction adds −log p_θ(x0 | x0, σ(0) = 0) for d3pm
// (diffusion.py: _reconstruction_loss).
func (m Model) d3pmWithReconstruction(p backbone.Params, invFreq []float32, logpX0, logpMask *Node, in DiffusionInputs, mode layers.Mode, drop *backbone.Dropout) *Node {
	diff := D3PMLoss(logpX0, logpMask, in.XT, in.T, m.T, m.Backbone.MaskIndex)
	clean := m.D3PMLogits(p, invFreq, in.X0, ZerosLike(in.Sigma), mode, drop)
	cleanX0, _ := SUBSTokenLogProbs(clean, in.X0, m.Backbone.MaskIndex)
	return Sub(diff, cleanX0)
}

// ARPerTokenLoss is the AR objective: input x[:, :-1], target x[:, 1:]
// (diffusion.py: _maybe_sub_sample, _loss).
// x is [B, L]; the result is [B, L-1].
func (m Model) ARPerTokenLoss(p backbone.Params, invFreq []float32, x *Node, mode layers.Mode, drop *backbone.Dropout) *Node {
	L := x.Shape().Dimensions[1]
	input := Slice(x, AxisRange(), AxisRange(0, L-1))
	target := Slice(x, AxisRange(), AxisRange(1, L))
	logp := backbone.Forward(m.Backbone, p, invFreq, input, nil, mode, drop)
	return ARLoss(logp, target)
}
