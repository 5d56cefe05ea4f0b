// Package eval is the `mdlm eval` stage: the perplexity of a checkpoint on a
// packed/v1 split as the reference computes it (spec §2.10, §7.1): the per-token
// NELBO (diffusion, one t per sequence, antithetic across the batch) or the AR
// negative log-likelihood, summed in float64 over every counted token, and exp
// of the mean at the end. Writes a metrics/v1 artifact (metrics.json).
package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	stsample "github.com/mdlm-go/mdlm/stages/sample"
)

// Type is the artifact type of evaluation results.
const Type = "metrics/v1"

// Batch is one evaluation batch prepared on the host.
type Batch struct {
	B, L          int
	X0, XT        []int32
	T             []float32
	Sigma, DSigma []float32
	Mask          []float32
}

// Rows gathers blocks [lo, hi) of a packed split.
func Rows(data *datasets.PackedArrow, idx []int) (x0 []int32, mask []float32) {
	for _, i := range idx {
		ids, m := data.Row(i)
		x0 = append(x0, ids...)
		for _, v := range m {
			mask = append(mask, float32(v))
		}
	}
	return x0, mask
}

// Noise draws the diffusion inputs of a batch from rng: antithetic t with the
// training floor (1e-3), discretised when T > 0, σ(t), σ'(t), and the masking.
func Noise(m diffusion.Model, x0 []int32, B, L int, rng *rand.Rand) (xt []int32, t, sigma, dsigma []float32) {
	u := make([]float32, B)
	for i := range u {
		u[i] = rng.Float32()
	}
	eps := m.SamplingEps
	if eps == 0 {
		eps = 1e-3
	}
	t = diffusion.SampleT(u, true, eps)
	if m.T > 0 {
		t = diffusion.Discretize(t, m.T)
	}
	sigma, dsigma = diffusion.SigmaDSigma(m.Schedule, t)
	um := make([]float32, B*L)
	for i := range um {
		um[i] = rng.Float32()
	}
	return diffusion.Mask(x0, um, sigma, int32(m.Backbone.MaskIndex)), t, sigma, dsigma
}

// Evaluator computes per-token losses with compiled graphs.
type Evaluator struct {
	Model   diffusion.Model
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
			return m.ARPerTokenLoss(p, invFreq, x0, nil)
		}
		return m.PerTokenLoss(p, invFreq, diffusion.DiffusionInputs{X0: x0, XT: xt, T: t, Sigma: sigma, DSigma: dsigma}, nil)
	}).WithName("eval_loss")
	return e
}

// Sums returns Σ loss·mask (float64) and Σ mask for one batch; for AR models the
// first position is never a target (mask[:, 1:] counts).
func (e *Evaluator) Sums(params []*gtensors.Tensor, b Batch) (float64, float64, error) {
	args := make([]any, 0, len(params)+5)
	for _, p := range params {
		args = append(args, p)
	}
	xt, t, sigma, dsigma := b.XT, b.T, b.Sigma, b.DSigma
	if xt == nil {
		xt, t, sigma, dsigma = b.X0, make([]float32, b.B), make([]float32, b.B), make([]float32, b.B)
	}
	args = append(args, gtensors.FromFlatDataAndDimensions(b.X0, b.B, b.L), gtensors.FromFlatDataAndDimensions(xt, b.B, b.L),
		gtensors.FromFlatDataAndDimensions(t, b.B), gtensors.FromFlatDataAndDimensions(sigma, b.B), gtensors.FromFlatDataAndDimensions(dsigma, b.B))
	out, err := e.exec.Call(args...)
	if err != nil {
		return 0, 0, err
	}
	loss, err := backbone.Float32s(out[0])
	if err != nil {
		return 0, 0, err
	}
	var sum, count float64
	width := len(loss) / b.B
	for r := 0; r < b.B; r++ {
		for i := 0; i < width; i++ {
			mi := r*b.L + i
			if width < b.L { // AR: targets are positions 1..L-1
				mi++
			}
			sum += float64(loss[r*width+i]) * float64(b.Mask[mi])
			count += float64(b.Mask[mi])
		}
	}
	return sum, count, nil
}

// Result is metrics.json.
type Result struct {
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
}

// Perplexity evaluates blocks in order in batches of batch rows (the antithetic
// stratification runs within each batch, as in the reference).
func (e *Evaluator) Perplexity(ctx context.Context, params []*gtensors.Tensor, data *datasets.PackedArrow, batch int, seed int64, maxBlocks int) (Result, error) {
	n := data.NumRows()
	if maxBlocks > 0 && maxBlocks < n {
		n = maxBlocks
	}
	var sum, count float64
	for lo, k := 0, 0; lo < n; lo, k = lo+batch, k+1 {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		idx := make([]int, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			idx = append(idx, i)
		}
		x0, mask := Rows(data, idx)
		b := Batch{B: len(idx), L: data.L, X0: x0, Mask: mask}
		if e.Model.Param != diffusion.ARP {
			b.XT, b.T, b.Sigma, b.DSigma = Noise(e.Model, x0, b.B, b.L, rand.New(rand.NewPCG(uint64(seed), uint64(k))))
		}
		s, c, err := e.Sums(params, b)
		if err != nil {
			return Result{}, err
		}
		sum, count = sum+s, count+c
	}
	if count == 0 {
		return Result{}, fmt.Errorf("no tokens to evaluate")
	}
	nll := sum / count
	return Result{NLL: nll, BPD: nll / math.Ln2, PPL: math.Exp(nll), Tokens: count, Blocks: n,
		T: e.Model.T, Param: string(e.Model.Param), Seed: seed, UnigramPPL: unigramPPL(data, n)}, nil
}

// unigramPPL is exp of the entropy of the evaluated tokens' unigram distribution
// (attention-masked tokens only): the perplexity of a model that ignores context.
func unigramPPL(data *datasets.PackedArrow, n int) float64 {
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
	h := 0.0
	for _, c := range counts {
		p := c / total
		h -= p * math.Log(p)
	}
	return math.Exp(h)
}

// Options configure the stage.
type Options struct {
	Checkpoint, Data, Split, Out string
	Batch                        int
	Seed                         int64
	T                            int // -1: the checkpoint's
	MaxBlocks                    int
	NoEMA                        bool
	Tool, Backend                string
}

// Run evaluates and publishes metrics/v1.
func Run(ctx context.Context, b compute.Backend, opts Options) (Result, error) {
	dir, err := checkpoint.Resolve(opts.Checkpoint)
	if err != nil {
		return Result{}, err
	}
	ck, err := checkpoint.Load(dir, true)
	if err != nil {
		return Result{}, fmt.Errorf("eval: %w", err)
	}
	m, err := stsample.Model(ck.Config)
	if err != nil {
		return Result{}, fmt.Errorf("eval: %w", err)
	}
	if opts.T >= 0 {
		m.T = opts.T
	}
	m.SamplingEps = 1e-3
	pm, err := artifact.Read(opts.Data, datasets.PackedType)
	if err != nil {
		return Result{}, fmt.Errorf("eval: %w", err)
	}
	if v, ok := pm.Params["vocab_size"].(float64); ok && int(v) != m.Backbone.Vocab {
		return Result{}, fmt.Errorf("eval: data %s has vocabulary %d, the checkpoint %d", opts.Data, int(v), m.Backbone.Vocab)
	}
	data, err := datasets.OpenPackedArrow(filepath.Join(opts.Data, opts.Split+".arrow"))
	if err != nil {
		return Result{}, fmt.Errorf("eval: %w", err)
	}
	defer data.Close()
	w := ck.ForInference()
	if opts.NoEMA {
		w = ck.Weights
	}
	if opts.Batch <= 0 {
		opts.Batch = 16
	}
	res, err := NewEvaluator(b, m, w.RotaryInvFreqOrDefault()).Perplexity(ctx, w.Tensors(), data, opts.Batch, opts.Seed, opts.MaxBlocks)
	if err != nil {
		return Result{}, fmt.Errorf("eval: %w", err)
	}
	res.Split, res.EMA = opts.Split, ck.EMA != nil && !opts.NoEMA
	man := artifact.Manifest{Type: Type, Stage: "eval", Tool: opts.Tool, Backend: opts.Backend,
		Inputs: map[string]string{"checkpoint": ck.Manifest.Digest(), "data": pm.Digest()},
		Params: map[string]any{"split": opts.Split, "batch": opts.Batch, "seed": opts.Seed, "T": m.T, "max_blocks": opts.MaxBlocks}}
	_, err = artifact.Publish(opts.Out, man, func(tmp string) error {
		raw, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "metrics.json"), append(raw, '\n'), 0o644)
	})
	return res, err
}
