package diffusion

import (
	"math"
	"math/rand/v2"
)

// SampleT is _sample_t: u ~ U[0,1)^n (given), optionally stratified as
// u_i ← (u_i/n + i/n) mod 1 (antithetic, the default), then t = (1 − eps)·u + eps
// with eps = training.sampling_eps (1e-3). Computed in float32 like the reference.
func SampleT(u []float32, antithetic bool, eps float64) []float32 {
	n := len(u)
	t := make([]float32, n)
	for i, x := range u {
		if antithetic {
			x = x/float32(n) + float32(i)/float32(n)
			x = float32(math.Mod(float64(x), 1))
		}
		t[i] = float32(1-eps)*x + float32(eps)
	}
	return t
}

// Discretize maps t to the grid of T steps: floor(t·T)/T + 1/T ∈ {1/T, …, 1}
// (diffusion.py: _forward_pass_diffusion with T > 0), in float32.
func Discretize(t []float32, T int) []float32 {
	out := make([]float32, len(t))
	for i, x := range t {
		out[i] = float32(math.Floor(float64(x*float32(T))))/float32(T) + 1/float32(T)
	}
	return out
}

// SigmaDSigma evaluates the schedule at each t (float64 math, float32 results).
func SigmaDSigma(s Schedule, t []float32) (sigma, dsigma []float32) {
	sigma = make([]float32, len(t))
	dsigma = make([]float32, len(t))
	for i, x := range t {
		sigma[i] = float32(s.Sigma(float64(x)))
		dsigma[i] = float32(s.DSigma(float64(x)))
	}
	return sigma, dsigma
}

// Mask is the absorbing forward process q(z_t | x): position i of row b becomes
// mask when u[b,i] < 1 − exp(−σ_b). x0 and u are [B·L] row-major.
func Mask(x0 []int32, u []float32, sigma []float32, maskIndex int32) []int32 {
	B := len(sigma)
	L := len(x0) / B
	out := make([]int32, len(x0))
	for b := 0; b < B; b++ {
		mc := float32(-math.Expm1(-float64(sigma[b])))
		for i := b * L; i < (b+1)*L; i++ {
			out[i] = x0[i]
			if u[i] < mc {
				out[i] = maskIndex
			}
		}
	}
	return out
}

// NoiseBatch draws the diffusion inputs of one batch of B rows of length L from
// rng (the order of draws is part of the reproducibility contract): B uniforms
// for antithetic t with the model's floor (SamplingEps, 1e-3 if unset),
// discretised when T > 0, then σ(t), σ'(t), then B·L uniforms for the masking.
func NoiseBatch(m Model, x0 []int32, B, L int, rng *rand.Rand) (xt []int32, t, sigma, dsigma []float32) {
	u := make([]float32, B)
	for i := range u {
		u[i] = rng.Float32()
	}
	eps := m.SamplingEps
	if eps == 0 {
		eps = 1e-3
	}
	t = SampleT(u, true, eps)
	if m.T > 0 {
		t = Discretize(t, m.T)
	}
	sigma, dsigma = SigmaDSigma(m.Schedule, t)
	um := make([]float32, B*L)
	for i := range um {
		um[i] = rng.Float32()
	}
	return Mask(x0, um, sigma, int32(m.Backbone.MaskIndex)), t, sigma, dsigma
}
