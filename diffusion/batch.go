package diffusion

import "math/rand/v2"

// Batch is one host-prepared batch of B sequences of length L, what the
// training step (package train) and the evaluation pass (package evaluate)
// feed their graphs: the clean tokens, the noised tokens with each row's time
// and σ(t), σ'(t), and the weights of the token mean (diffusion.py:
// Diffusion._loss's token_mask, the attention mask). An AR batch has no noise:
// XT, T, Sigma and DSigma are nil, and only positions 1..L-1 are targets.
type Batch struct {
	B, L          int
	X0, XT        []int32   // [B·L]
	T             []float32 // [B]
	Sigma, DSigma []float32 // [B]
	TokenMask     []float32 // [B·L]
}

// NewBatch is the batch of rows x0 with their token mask; for a diffusion
// model it draws the noise from rng (NoiseBatch), for an AR model it draws
// nothing.
func NewBatch(m Model, x0 []int32, tokenMask []float32, B, L int, rng *rand.Rand) Batch {
	b := Batch{B: B, L: L, X0: x0, TokenMask: tokenMask}
	if m.Param != ARP {
		b.XT, b.T, b.Sigma, b.DSigma = NoiseBatch(m, x0, B, L, rng)
	}
	return b
}

// NoiseInputs are the graph inputs xt, t, sigma and dsigma of the batch. An
// AR batch, which has none, passes x0 and zeros in their place, so one graph
// signature serves every objective.
func (b Batch) NoiseInputs() (xt []int32, t, sigma, dsigma []float32) {
	if b.XT != nil {
		return b.XT, b.T, b.Sigma, b.DSigma
	}
	return b.X0, make([]float32, b.B), make([]float32, b.B), make([]float32, b.B)
}
