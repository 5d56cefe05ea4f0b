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
			x = stratum(x, i, n)
		}
		t[i] = float32(1-eps)*x + float32(eps)
	}
	return t
}

// stratum is the antithetic step of _sample_t for draw i of n: u moved into
// the stratum [i/n, (i+1)/n) as (u/n + i/n) mod 1, in float32.
func stratum(u float32, i, n int) float32 {
	x := u/float32(n) + float32(i)/float32(n)
	return float32(math.Mod(float64(x), 1))
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
	mc := make([]float32, len(sigma))
	for b, s := range sigma {
		mc[b] = float32(-math.Expm1(-float64(s)))
	}
	return MaskAt(x0, u, mc, maskIndex)
}

// MaskAt is q_xt with the move chance given per row (diffusion.py: q_xt):
// position i of row b becomes mask when u[b,i] < moveChance[b].
func MaskAt(x0 []int32, u, moveChance []float32, maskIndex int32) []int32 {
	B := len(moveChance)
	L := len(x0) / B
	out := make([]int32, len(x0))
	for b, mc := range moveChance {
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
// for t (Model.SampleTimes: antithetic across the batch unless turned off, the
// floor SamplingEps, importance sampling, the grid of T), then σ(t), σ'(t),
// then B·L uniforms for the masking (Model.NoiseAt).
func NoiseBatch(m Model, x0 []int32, B, L int, rng *rand.Rand) (xt []int32, t, sigma, dsigma []float32) {
	u := make([]float32, B)
	for i := range u {
		u[i] = rng.Float32()
	}
	t = m.SampleTimes(u)
	xt, sigma, dsigma = m.NoiseAt(x0, t, B, L, rng)
	return xt, t, sigma, dsigma
}
