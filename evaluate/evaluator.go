package evaluate

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// Evaluator computes per-token losses with a compiled graph, dropout off: the
// validation pass of training and the `mdlm eval` stage (diffusion.py:
// Diffusion._compute_loss under validation_step).
type Evaluator struct {
	Model diffusion.Model
	// MCDraws > 1 averages the NELBO over that many draws of t per sequence
	// and reports the Monte Carlo standard error (see perplexityMC); 0 or 1 is
	// the reference's single draw. AR models draw nothing and ignore it.
	MCDraws int
	// Crop, when set, crops rows of twice its length before evaluating them
	// (text8-crop; diffusion.py: _maybe_sub_sample applies in validation too).
	Crop    *diffusion.Crop
	invFreq []float32
	exec    *Exec
}

// NewEvaluator compiles (lazily) the loss graph of m.
func NewEvaluator(b compute.Backend, m diffusion.Model, invFreq []float32) *Evaluator {
	e := &Evaluator{Model: m, invFreq: invFreq}
	n := len(m.Backbone.Specs())
	e.exec = MustNewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(m.Backbone, in[:n])
		x0, xt, t, sigma, dsigma := in[n], in[n+1], in[n+2], in[n+3], in[n+4]
		if m.Param == diffusion.ARP {
			return m.ARPerTokenLoss(p, invFreq, x0, layers.Inference, nil)
		}
		return m.PerTokenLoss(p, invFreq, diffusion.DiffusionInputs{X0: x0, XT: xt, T: t, Sigma: sigma, DSigma: dsigma}, layers.Inference, nil)
	}).WithName("eval_loss")
	return e
}

// Sums returns Σ loss·mask (float64) and Σ mask for one batch (TokenMask is the
// attention mask); for AR models the first position is never a target
// (mask[:, 1:] counts).
func (e *Evaluator) Sums(params []*tensors.Tensor, b diffusion.Batch) (float64, float64, error) {
	sums, counts, err := e.RowSums(params, b)
	if err != nil {
		return 0, 0, err
	}
	var sum, count float64
	for r := range sums {
		sum += sums[r]
		count += counts[r]
	}
	return sum, count, nil
}

// Perplexity is the result of an evaluation pass (the metrics/v1 metrics.json
// of `mdlm eval`).
type Perplexity struct {
	Split      string  `json:"split"`
	NLL        float64 `json:"nll"` // per-token NELBO (diffusion) or NLL (AR), nats
	BPD        float64 `json:"bpd"`
	PPL        float64 `json:"ppl"`
	Tokens     float64 `json:"tokens"`
	Blocks     int     `json:"blocks"`
	T          int     `json:"T"`
	Param      string  `json:"parameterization"`
	Seed       int64   `json:"seed"`
	UnigramPPL float64 `json:"unigram_ppl"` // of the evaluated tokens, for scale
	EMA        bool    `json:"ema"`
	// With MCDraws > 1 (eval --mc-draws): the draws per sequence and the Monte
	// Carlo standard errors of nll, bpd (nll/ln 2) and ppl (ppl·se(nll), the
	// delta method). Absent for the reference's single draw.
	MCDraws   int      `json:"mc_draws,omitempty"`
	NLLStderr *float64 `json:"nll_stderr,omitempty"`
	BPDStderr *float64 `json:"bpd_stderr,omitempty"`
	PPLStderr *float64 `json:"ppl_stderr,omitempty"`
}

// Perplexity evaluates blocks in order in batches of batch rows (the antithetic
// stratification runs within each batch, as in the reference); batch k's noise
// is drawn from PCG(seed, k). The sums are float64 and exp is taken at the end.
func (e *Evaluator) Perplexity(ctx context.Context, params []*tensors.Tensor, data *datasets.PackedArrow, batch int, seed int64, maxBlocks int) (Perplexity, error) {
	n := data.NumRows()
	if maxBlocks > 0 && maxBlocks < n {
		n = maxBlocks
	}
	if e.MCDraws > 1 && e.Model.Param != diffusion.ARP {
		return e.perplexityMC(ctx, params, data, batch, seed, n)
	}
	var sum, count float64
	for lo, k := 0, 0; lo < n; lo, k = lo+batch, k+1 {
		if err := ctx.Err(); err != nil {
			return Perplexity{}, err
		}
		x0, mask, L, err := e.rows(data, lo, min(lo+batch, n), seed, k)
		if err != nil {
			return Perplexity{}, err
		}
		b := diffusion.NewBatch(e.Model, x0, mask, len(x0)/L, L, rand.New(rand.NewPCG(uint64(seed), uint64(k))))
		s, c, err := e.Sums(params, b)
		if err != nil {
			return Perplexity{}, err
		}
		sum, count = sum+s, count+c
	}
	if count == 0 {
		return Perplexity{}, fmt.Errorf("no tokens to evaluate")
	}
	nll := sum / count
	return Perplexity{NLL: nll, BPD: nll / math.Ln2, PPL: math.Exp(nll), Tokens: count, Blocks: n,
		T: e.Model.T, Param: string(e.Model.Param), Seed: seed, UnigramPPL: UnigramPPL(data, n)}, nil
}

// UnigramPPL is exp of the entropy of the first n blocks' unigram distribution
// (attention-masked tokens only): the perplexity of a model that ignores context.
func UnigramPPL(data *datasets.PackedArrow, n int) float64 {
	counts := map[int32]float64{}
	total := 0.0
	for i := 0; i < n; i++ {
		ids, mask := data.Row(i)
		for j, id := range ids {
			if mask[j] != 0 {
				counts[id]++
				total++
			}
		}
	}
	return math.Exp(entropy(counts, total))
}

// entropy is −Σ_v p_v ln p_v with p_v = counts[v] / total, summed in the
// order of the ids so that the result is the same on every run.
func entropy(counts map[int32]float64, total float64) float64 {
	h := 0.0
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		p := counts[id] / total
		h -= p * math.Log(p)
	}
	return h
}
