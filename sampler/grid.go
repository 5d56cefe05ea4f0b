// Package sampler turns a trained denoiser into tokens (diffusion.py: _sample,
// _ddpm_update, _ddpm_caching_update, _analytic_update, _ar_sampler): the
// ancestral ddpm sampler, the reference's ddpm_cache, a per-row cache that
// re-runs the denoiser only on sequences that changed, SEDD's analytic (Tweedie
// τ-leaping) sampler, and the AR baseline's sampler.
//
// Categorical draws use the exponential-race form of Gumbel-max the reference uses,
// argmax_v p_v / (1e-10 − log(u_v + 1e-10)), from a uniform source: a seeded
// in-graph generator, or draws supplied by the caller (the parity tests feed the
// reference's own draws). They run in float32 as the reference's, or in float64
// (Options.Draws), which keeps the tail float32 uniforms cut off. Options add
// what later samplers offer: temperature and top-p (DUO, BD3-LM), confidence-
// ordered unmasking (MaskGIT, LLaDA), DUO's greedy and ancestral final steps;
// a prior's given tokens (prompts) are kept by every sampler.
package sampler

// Linspace is torch.linspace(start, end, steps) in float32 as the CPU kernel
// computes it: the first half counts up from start, the second half down from end.
func Linspace(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	if steps == 1 {
		out[0] = start
		return out
	}
	step := (end - start) / float32(steps-1)
	half := steps / 2
	for i := range out {
		if i < half {
			out[i] = start + step*float32(i)
		} else {
			out[i] = end - step*float32(steps-i-1)
		}
	}
	return out
}
