package evaluate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
)

// rows are blocks [lo, hi) of data, cropped by e.Crop when the blocks hold
// twice its length (at a start seeded by (seed, k), batch k), with their row
// length.
func (e *Evaluator) rows(data *datasets.PackedArrow, lo, hi int, seed int64, k int) ([]int32, []float32, int, error) {
	idx := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		idx = append(idx, i)
	}
	x0, mask := data.Rows(idx)
	if e.Crop == nil || data.L != 2*e.Crop.L {
		return x0, mask, data.L, nil
	}
	x0, mask, L, err := e.Crop.Apply(x0, mask, len(idx), diffusion.CropStart(seed, k, e.Crop.L), e.Model.Param == diffusion.ARP)
	return x0, mask, L, err
}

// RowSums is Sums per row: Σ_i loss·mask and Σ_i mask of each of the batch's
// rows, in float64.
func (e *Evaluator) RowSums(params []*tensors.Tensor, b diffusion.Batch) (sums, counts []float64, err error) {
	args := make([]any, 0, len(params)+5)
	for _, p := range params {
		args = append(args, p)
	}
	xt, t, sigma, dsigma := b.NoiseInputs()
	args = append(args, tensors.FromFlatDataAndDimensions(b.X0, b.B, b.L), tensors.FromFlatDataAndDimensions(xt, b.B, b.L),
		tensors.FromFlatDataAndDimensions(t, b.B), tensors.FromFlatDataAndDimensions(sigma, b.B), tensors.FromFlatDataAndDimensions(dsigma, b.B))
	out, err := e.exec.Call(args...)
	if err != nil {
		return nil, nil, err
	}
	loss, err := backbone.Float32s(out[0])
	if err != nil {
		return nil, nil, err
	}
	sums, counts = make([]float64, b.B), make([]float64, b.B)
	width := len(loss) / b.B
	for r := 0; r < b.B; r++ {
		for i := 0; i < width; i++ {
			mi := r*b.L + i
			if width < b.L { // AR: targets are positions 1..L-1
				mi++
			}
			sums[r] += float64(loss[r*width+i]) * float64(b.TokenMask[mi])
			counts[r] += float64(b.TokenMask[mi])
		}
	}
	return sums, counts, nil
}

// perplexityMC is Perplexity with K = MCDraws draws of (t, mask) per sequence:
// for batch k, from PCG(seed, k), draw j of every row takes B uniforms for t
// (Model.StratumTimes: draw j in the stratum [j/K, (j+1)/K) of each
// sequence's draws when the model is antithetic) and B·L for its mask. A
// sequence's NELBO is the mean of its K draws' sums; the per-token NELBO is
// their total over the total token count. Its standard error is
// sqrt(Σ_i s_i²/K) / Σ_i c_i, with s_i² the sample variance of sequence i's K
// sums: the variance of the estimate over the draws. With stratified draws it
// is conservative (the stratified mean varies less than K independent draws).
func (e *Evaluator) perplexityMC(ctx context.Context, params []*tensors.Tensor, data *datasets.PackedArrow, batch int, seed int64, n int) (Perplexity, error) {
	K := e.MCDraws
	var total, count, variance float64
	for lo, k := 0, 0; lo < n; lo, k = lo+batch, k+1 {
		if err := ctx.Err(); err != nil {
			return Perplexity{}, err
		}
		x0, mask, L, err := e.rows(data, lo, min(lo+batch, n), seed, k)
		if err != nil {
			return Perplexity{}, err
		}
		draws, counts, err := e.draws(params, x0, mask, L, rand.New(rand.NewPCG(uint64(seed), uint64(k))))
		if err != nil {
			return Perplexity{}, err
		}
		for r, d := range draws {
			mean, s2 := meanVar(d)
			total, count, variance = total+mean, count+counts[r], variance+s2/float64(K)
		}
	}
	if count == 0 {
		return Perplexity{}, fmt.Errorf("no tokens to evaluate")
	}
	nll, se := total/count, math.Sqrt(variance)/count
	bpdSE, pplSE := se/math.Ln2, math.Exp(nll)*se
	return Perplexity{NLL: nll, BPD: nll / math.Ln2, PPL: math.Exp(nll), Tokens: count, Blocks: n,
		T: e.Model.T, Param: string(e.Model.Param), Seed: seed, UnigramPPL: UnigramPPL(data, n),
		MCDraws: K, NLLStderr: &se, BPDStderr: &bpdSE, PPLStderr: &pplSE}, nil
}

// draws evaluates the K draws of one batch of rows: draws[r][j] is row r's
// loss sum under draw j; counts[r] its token count.
func (e *Evaluator) draws(params []*tensors.Tensor, x0 []int32, mask []float32, L int, rng *rand.Rand) ([][]float64, []float64, error) {
	K, B := e.MCDraws, len(x0)/L
	out := make([][]float64, B)
	for r := range out {
		out[r] = make([]float64, K)
	}
	var counts []float64
	for j := 0; j < K; j++ {
		u := make([]float32, B)
		for i := range u {
			u[i] = rng.Float32()
		}
		t := e.Model.StratumTimes(u, j, K)
		xt, sigma, dsigma := e.Model.NoiseAt(x0, t, B, L, rng)
		sums, c, err := e.RowSums(params, diffusion.Batch{B: B, L: L, X0: x0, XT: xt, T: t, Sigma: sigma, DSigma: dsigma, TokenMask: mask})
		if err != nil {
			return nil, nil, err
		}
		for r, s := range sums {
			out[r][j] = s
		}
		counts = c
	}
	return out, counts, nil
}

// meanVar is the mean and the sample variance (n − 1) of xs (len ≥ 2).
func meanVar(xs []float64) (mean, variance float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}
