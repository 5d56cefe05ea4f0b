// Package diffusion holds the MDLM method around the backbone: the noise schedules
// (noise_schedule.py) and, from diffusion.py, time sampling (_sample_t), the
// masking forward process (q_xt), the SUBS, D3PM and SEDD parameterizations and
// their losses, the AR loss and the per-token reduction (_loss).
//
// Schedules are evaluated on the host in float64 and handed to graphs as inputs;
// everything that needs a gradient is a GoMLX graph function.
package diffusion

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Schedule is a noise schedule: total noise σ(t) and its rate σ'(t), t ∈ [0, 1].
// α_t = exp(−σ(t)) and the move (mask) chance is 1 − α_t.
type Schedule interface {
	Name() string
	Sigma(t float64) float64
	DSigma(t float64) float64
}

// LogLinearEps is the ε hard-coded inside LogLinearNoise.
const LogLinearEps = 1e-3

// LogLinear: σ(t) = −log1p(−(1−ε)t), σ'(t) = (1−ε)/(1−(1−ε)t); α_t = 1 − (1−ε)t.
// The reference ignores the config's sigma_min/sigma_max for this type.
type LogLinear struct{ Eps float64 }

func (LogLinear) Name() string                   { return "loglinear" }
func (s LogLinear) Sigma(t float64) float64      { return -math.Log1p(-(1 - s.Eps) * t) }
func (s LogLinear) DSigma(t float64) float64     { return (1 - s.Eps) / (1 - (1-s.Eps)*t) }
func (s LogLinear) MoveChance(t float64) float64 { return (1 - s.Eps) * t }

// Cosine: σ(t) = −log(ε + (1−ε)cos(πt/2)).
type Cosine struct{ Eps float64 }

func (Cosine) Name() string { return "cosine" }
func (s Cosine) Sigma(t float64) float64 {
	return -math.Log(s.Eps + (1-s.Eps)*math.Cos(t*math.Pi/2))
}
func (s Cosine) DSigma(t float64) float64 {
	c := (1 - s.Eps) * math.Cos(t*math.Pi/2)
	return (1 - s.Eps) * math.Sin(t*math.Pi/2) * math.Pi / 2 / (c + s.Eps)
}

// CosineSqr: σ(t) = −log(ε + (1−ε)cos²(πt/2)).
type CosineSqr struct{ Eps float64 }

func (CosineSqr) Name() string { return "cosinesqr" }
func (s CosineSqr) Sigma(t float64) float64 {
	c := math.Cos(t * math.Pi / 2)
	return -math.Log(s.Eps + (1-s.Eps)*c*c)
}
func (s CosineSqr) DSigma(t float64) float64 {
	c := math.Cos(t * math.Pi / 2)
	return (1 - s.Eps) * math.Sin(t*math.Pi) * math.Pi / 2 / ((1-s.Eps)*c*c + s.Eps)
}

// Linear: σ(t) = σ_min + t(σ_max − σ_min); σ' is the constant σ_max − σ_min.
type Linear struct{ SigmaMin, SigmaMax float64 }

func (Linear) Name() string              { return "linear" }
func (s Linear) Sigma(t float64) float64 { return s.SigmaMin + t*(s.SigmaMax-s.SigmaMin) }
func (s Linear) DSigma(float64) float64  { return s.SigmaMax - s.SigmaMin }

// Geometric: σ(t) = σ_min^(1−t)·σ_max^t, σ'(t) = σ(t)·(log σ_max − log σ_min).
type Geometric struct{ SigmaMin, SigmaMax float64 }

func (Geometric) Name() string { return "geometric" }
func (s Geometric) Sigma(t float64) float64 {
	return math.Pow(s.SigmaMin, 1-t) * math.Pow(s.SigmaMax, t)
}
func (s Geometric) DSigma(t float64) float64 {
	return s.Sigma(t) * (math.Log(s.SigmaMax) - math.Log(s.SigmaMin))
}

// Default σ bounds of the reference's base noise config (sigma_min 1e-4,
// sigma_max 20), which the reference fixtures use for linear and geometric.
const (
	DefaultSigmaMin = 1e-4
	DefaultSigmaMax = 20
)

// ReferenceSigmaBounds are the σ bounds the reference trains a schedule with
// when it is selected by name: configs/noise/linear.yaml gives linear
// σ_min 1e-3 and σ_max 7.0; geometric has no config file and keeps the base
// config's 1e-4 and 20; the other schedules ignore the bounds.
func ReferenceSigmaBounds(name string) (sigmaMin, sigmaMax float64) {
	if name == "linear" {
		return 1e-3, 7.0
	}
	return DefaultSigmaMin, DefaultSigmaMax
}

var scheduleNames = []string{"loglinear", "cosine", "cosinesqr", "linear", "geometric"}

// NewSchedule is get_noise: a schedule by name. sigmaMin/sigmaMax apply to linear
// and geometric only.
func NewSchedule(name string, sigmaMin, sigmaMax float64) (Schedule, error) {
	switch name {
	case "loglinear":
		return LogLinear{Eps: LogLinearEps}, nil
	case "cosine":
		return Cosine{Eps: 1e-3}, nil
	case "cosinesqr":
		return CosineSqr{Eps: 1e-3}, nil
	case "linear":
		return Linear{SigmaMin: sigmaMin, SigmaMax: sigmaMax}, nil
	case "geometric":
		if sigmaMin <= 0 || sigmaMax <= 0 {
			return nil, fmt.Errorf("noise schedule geometric: sigma_min %g and sigma_max %g must be positive", sigmaMin, sigmaMax)
		}
		return Geometric{SigmaMin: sigmaMin, SigmaMax: sigmaMax}, nil
	}
	names := append([]string(nil), scheduleNames...)
	sort.Strings(names)
	return nil, fmt.Errorf("unknown noise schedule %q (known: %s)", name, strings.Join(names, ", "))
}

// MoveChance is 1 − exp(−σ(t)), the per-token masking probability.
func MoveChance(s Schedule, t float64) float64 { return -math.Expm1(-s.Sigma(t)) }
