// Package train is the `mdlm train` stage: train MDLM (SUBS, continuous or
// discrete time), D3PM, SEDD or the AR baseline on a packed/v1 artifact with the
// reference's recipe (spec §6): AdamW, warmup then constant or cosine learning
// rate, global-norm clipping, EMA of the weights, validation with the EMA weights.
//
// Reproducibility: the data order (a permutation per epoch), the noise (t and
// masks) and dropout of step k are functions of (seed, k) alone, so a checkpoint
// needs only the step to resume, and a run killed at any moment and resumed
// produces exactly the losses of an uninterrupted run.
//
// Layout of a run directory:
//
//	<run>/checkpoints/step-NNNNNNNN/   checkpoint/v1 with ema, optimizer, state.json
//	<run>/checkpoints/last             name of the newest complete checkpoint
//	<run>/metrics.jsonl                one line per logged step / validation
//	<run>/loss.png                     training loss and validation perplexity
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/optim"
	"github.com/mdlm-go/mdlm/stages/eval"
	step "github.com/mdlm-go/mdlm/train"
)

// Options configure a run.
type Options struct {
	Data, Out string
	// Model: a preset (tiny, small, medium) or "custom" with the sizes below.
	Model                       string
	Hidden, Heads, Blocks, Cond int
	Dropout                     float64
	Param                       string // subs, d3pm, sedd, ar
	T                           int
	TimeConditioning            bool
	Noise                       string
	Steps, Batch                int
	Accum                       int // micro-batches per optimizer step (gradient accumulation)
	LR                          float64
	Warmup                      int
	Schedule                    string // constant, cosine
	Clip, WeightDecay, EMA      float64
	Seed                        int64
	LogEvery, EvalEvery         int
	EvalBlocks                  int
	CheckpointEvery, KeepLast   int
	Resume                      bool
	Precision                   string // "fp32", "bf16" (mixed), or "auto": bf16 on XLA (GPU), fp32 on the Go backend
	Tool, Backend               string
	Log                         *slog.Logger
	Progress                    func(step, total int, loss float64, tokensPerSec float64)
	StopAfter                   int // testing: return after this many steps of this call (0: never)
}

// Metrics is one line of metrics.jsonl.
type Metrics struct {
	Step         int     `json:"step"`
	Loss         float64 `json:"loss,omitempty"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	ValNLL       float64 `json:"val_nll,omitempty"`
	ValPPL       float64 `json:"val_ppl,omitempty"`
}

// ErrNonFinite reports a NaN or Inf loss; the last good checkpoint is kept.
var ErrNonFinite = errors.New("train: non-finite loss")

// Run trains (or resumes) and returns the final metrics.
func Run(ctx context.Context, b compute.Backend, opts Options) (*Metrics, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	pm, err := artifact.Read(opts.Data, datasets.PackedType)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	trainData, err := datasets.OpenPackedArrow(filepath.Join(opts.Data, "train.arrow"))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer trainData.Close()
	var validData *datasets.PackedArrow
	if _, err := os.Stat(filepath.Join(opts.Data, "valid.arrow")); err == nil {
		if validData, err = datasets.OpenPackedArrow(filepath.Join(opts.Data, "valid.arrow")); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		defer validData.Close()
	}
	cfg, err := modelConfig(opts, pm, trainData.L)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	m, err := methodModel(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r, err := newRun(b, opts, cfg, m)
	if err != nil {
		return nil, err
	}
	return r.loop(ctx, trainData, validData)
}

func modelConfig(opts Options, pm artifact.Manifest, L int) (checkpoint.Config, error) {
	vocab, _ := pm.Params["vocab_size"].(float64)
	mask, _ := pm.Params["mask_index"].(float64)
	tok, _ := pm.Params["tokenizer"].(string)
	if vocab <= 0 {
		return checkpoint.Config{}, fmt.Errorf("data %s: manifest has no vocab_size", opts.Data)
	}
	arch := backbone.DiT
	if opts.Param == "ar" {
		arch = backbone.AR
	}
	var bc backbone.Config
	if opts.Model == "custom" || opts.Model == "" {
		bc = backbone.Config{Arch: arch, Vocab: int(vocab), Hidden: opts.Hidden, Heads: opts.Heads, Blocks: opts.Blocks,
			Cond: opts.Cond, Length: L, MaskIndex: int(mask)}
	} else {
		var err error
		if bc, err = backbone.Preset(opts.Model, arch, int(vocab), L); err != nil {
			return checkpoint.Config{}, err
		}
		bc.MaskIndex = int(mask)
	}
	bc.Dropout = opts.Dropout
	if err := bc.Validate(); err != nil {
		return checkpoint.Config{}, err
	}
	return checkpoint.Config{Model: bc, Tokenizer: tok, Method: checkpoint.Method{Parameterization: opts.Param, T: opts.T,
		TimeConditioning: opts.TimeConditioning, Noise: opts.Noise}}, nil
}

func methodModel(cfg checkpoint.Config, opts Options) (diffusion.Model, error) {
	sched, err := diffusion.NewSchedule(cfg.Method.Noise, diffusion.DefaultSigmaMin, diffusion.DefaultSigmaMax)
	if err != nil {
		return diffusion.Model{}, err
	}
	m := diffusion.Model{Backbone: cfg.Model, Param: diffusion.Parameterization(cfg.Method.Parameterization), T: cfg.Method.T,
		TimeConditioning: cfg.Method.TimeConditioning, Schedule: sched, SamplingEps: 1e-3, Antithetic: true}
	return m, m.Validate()
}

// run holds a training run's state.
type run struct {
	b       compute.Backend
	opts    Options
	cfg     checkpoint.Config
	model   diffusion.Model
	step    *step.Step
	state   *step.State
	ema     []*gtensors.Tensor
	emaN    int
	emaExec *Exec
	invFreq []float32
	eval    *eval.Evaluator
	metrics *os.File
	history []Metrics
}

func newRun(b compute.Backend, opts Options, cfg checkpoint.Config, m diffusion.Model) (*run, error) {
	lr, err := optim.NewLRSchedule(opts.Schedule, opts.LR, opts.Warmup, opts.Steps)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	adam := optim.DefaultAdamW()
	adam.LR, adam.WeightDecay = opts.LR, opts.WeightDecay
	r := &run{b: b, opts: opts, cfg: cfg, model: m}
	if err := r.restoreOrInit(); err != nil {
		return nil, err
	}
	if r.step, err = step.NewStep(b, m, adam, lr, opts.Clip, r.invFreq); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	switch prec := resolvePrecision(opts.Precision, b); prec {
	case "bf16":
		r.step.MixedPrecision = dtypes.BFloat16
	case "fp32":
	default:
		return nil, fmt.Errorf("train: --precision %q: want auto, fp32 or bf16", opts.Precision)
	}
	opts.Log.Info("precision", "precision", resolvePrecision(opts.Precision, b))
	r.eval = eval.NewEvaluator(b, m, r.invFreq)
	n := len(cfg.Model.Specs())
	r.emaExec = MustNewExec(b, func(g *Graph, in []*Node) []*Node {
		d := in[2*n] // decay, scalar
		out := make([]*Node, n)
		for i := 0; i < n; i++ {
			// shadow ← shadow − (1 − d)·(shadow − θ)
			out[i] = Sub(in[i], Mul(Sub(in[i], in[n+i]), OneMinus(d)))
		}
		return out
	}).WithName("ema_update")
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	r.metrics, err = os.OpenFile(filepath.Join(opts.Out, MetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	return r, err
}

// restoreOrInit loads the last checkpoint (with --resume) or initialises weights.
func (r *run) restoreOrInit() error {
	last, _ := checkpoint.Resolve(r.opts.Out)
	if r.opts.Resume && last != r.opts.Out {
		t, err := checkpoint.LoadTraining(last)
		if err != nil {
			return fmt.Errorf("train --resume: %w", err)
		}
		if t.Config.Model != r.cfg.Model || t.Config.Method != r.cfg.Method {
			return fmt.Errorf("train --resume: checkpoint %s has model %+v / %+v, the options give %+v / %+v",
				last, t.Config.Model, t.Config.Method, r.cfg.Model, r.cfg.Method)
		}
		if t.State.Seed != r.opts.Seed {
			return fmt.Errorf("train --resume: checkpoint %s was trained with --seed %d, not %d", last, t.State.Seed, r.opts.Seed)
		}
		r.invFreq = t.Raw.RotaryInvFreqOrDefault()
		r.state = &step.State{Params: t.Raw.Tensors(), Step: t.State.Step}
		for _, s := range r.cfg.Model.Specs() {
			r.state.M = append(r.state.M, gtensors.FromFlatDataAndDimensions(t.M[s.Name], s.Shape...))
			r.state.V = append(r.state.V, gtensors.FromFlatDataAndDimensions(t.V[s.Name], s.Shape...))
		}
		r.ema, r.emaN = t.EMA.Tensors(), t.State.EMAUpdates
		r.opts.Log.Info("resumed", "checkpoint", last, "step", t.State.Step)
		return nil
	}
	if _, err := os.Stat(filepath.Join(r.opts.Out, checkpoint.CheckpointsDir)); err == nil && !r.opts.Resume {
		return fmt.Errorf("train: %s already has checkpoints: pass --resume to continue it, or choose another --out", r.opts.Out)
	}
	w, err := backbone.NewWeights(r.cfg.Model, uint64(r.opts.Seed))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	r.invFreq = w.RotaryInvFreqOrDefault()
	r.state, err = step.NewState(w, r.opts.Seed, dtypes.Float32)
	if err != nil {
		return err
	}
	r.ema = w.Tensors()
	return nil
}

// batch builds micro-batch k (step·accum + micro): rows from the epoch's
// permutation, noise seeded by (seed, k).
func (r *run) batch(data *datasets.PackedArrow, k int, perms *permCache) step.Batch {
	B, L := r.opts.Batch, data.L
	idx := make([]int, B)
	for j := range idx {
		g := k*B + j
		idx[j] = perms.get(g / data.NumRows())[g%data.NumRows()]
	}
	x0, mask := eval.Rows(data, idx)
	bt := step.Batch{B: B, L: L, X0: x0, TokenMask: mask}
	if r.model.Param != diffusion.ARP {
		rng := rand.New(rand.NewPCG(uint64(r.opts.Seed), uint64(k)))
		bt.XT, bt.T, bt.Sigma, bt.DSigma = eval.Noise(r.model, x0, B, L, rng)
	}
	return bt
}

// permCache keeps the current epoch's permutation.
type permCache struct {
	seed  int64
	n     int
	epoch int
	perm  []int
}

func (p *permCache) get(epoch int) []int {
	if p.perm == nil || epoch != p.epoch {
		p.epoch = epoch
		p.perm = rand.New(rand.NewPCG(uint64(p.seed), uint64(epoch)+1<<40)).Perm(p.n)
	}
	return p.perm
}

func (r *run) loop(ctx context.Context, trainData, validData *datasets.PackedArrow) (*Metrics, error) {
	opts := r.opts
	perms := &permCache{seed: opts.Seed, n: trainData.NumRows()}
	var last Metrics
	start, tokens := time.Now(), 0
	taken := 0
	for r.state.Step < opts.Steps {
		if ctx.Err() != nil { // Ctrl-C: keep what we have
			if err := r.save(); err != nil {
				return nil, err
			}
			return &last, ctx.Err()
		}
		k := r.state.Step
		accum := max(1, opts.Accum)
		var micro []step.Batch
		var rngs []*gtensors.Tensor
		for a := 0; a < accum; a++ {
			mk := k*accum + a
			micro = append(micro, r.batch(trainData, mk, perms))
			rng, err := RNGStateFromSeed(opts.Seed*1_000_003 + int64(mk))
			if err != nil {
				return nil, err
			}
			rngs = append(rngs, rng)
		}
		res, err := r.step.RunAccum(r.state, micro, rngs)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(float64(res.Loss)) || math.IsInf(float64(res.Loss), 0) {
			return nil, fmt.Errorf("%w at step %d (loss %v): stopped; the last good checkpoint is kept in %s",
				ErrNonFinite, k+1, res.Loss, filepath.Join(opts.Out, checkpoint.CheckpointsDir))
		}
		if err := r.updateEMA(); err != nil {
			return nil, err
		}
		tokens += accum * micro[0].B * micro[0].L
		taken++
		last = Metrics{Step: r.state.Step, Loss: float64(res.Loss), LR: res.LR, GradNorm: float64(res.GradNorm),
			TokensPerSec: float64(tokens) / time.Since(start).Seconds()}
		if opts.LogEvery > 0 && (r.state.Step%opts.LogEvery == 0 || r.state.Step == opts.Steps) {
			r.record(last)
			opts.Log.Info("step", "step", last.Step, "loss", fmt.Sprintf("%.4f", last.Loss), "lr", last.LR,
				"grad_norm", fmt.Sprintf("%.3f", last.GradNorm), "tokens_per_sec", int(last.TokensPerSec))
		}
		if opts.Progress != nil {
			opts.Progress(r.state.Step, opts.Steps, last.Loss, last.TokensPerSec)
		}
		if validData != nil && opts.EvalEvery > 0 && (r.state.Step%opts.EvalEvery == 0 || r.state.Step == opts.Steps) {
			res, err := r.eval.Perplexity(ctx, r.emaOrParams(), validData, opts.Batch, opts.Seed, opts.EvalBlocks)
			if err != nil && ctx.Err() != nil { // interrupted mid-evaluation: the step itself is done, keep it
				if err := r.save(); err != nil {
					return nil, err
				}
				return &last, ctx.Err()
			}
			if err != nil {
				return nil, err
			}
			vm := Metrics{Step: r.state.Step, ValNLL: res.NLL, ValPPL: res.PPL}
			last.ValNLL, last.ValPPL = res.NLL, res.PPL
			r.record(vm)
			opts.Log.Info("validation (EMA weights)", "step", vm.Step, "val_nll", fmt.Sprintf("%.4f", res.NLL),
				"val_ppl", fmt.Sprintf("%.2f", res.PPL), "unigram_ppl", fmt.Sprintf("%.2f", res.UnigramPPL))
		}
		if (opts.CheckpointEvery > 0 && r.state.Step%opts.CheckpointEvery == 0) || r.state.Step == opts.Steps {
			if err := r.save(); err != nil {
				return nil, err
			}
		}
		if opts.StopAfter > 0 && taken == opts.StopAfter {
			break
		}
	}
	r.metrics.Close()
	if err := writePlot(filepath.Join(opts.Out, "loss.png"), opts.Out); err != nil {
		opts.Log.Warn("loss plot not written", "err", err)
	}
	return &last, nil
}

// updateEMA applies shadow ← shadow − (1 − d)(shadow − θ) with
// d = min(decay, (1 + n)/(10 + n)) (models/ema.py).
func (r *run) updateEMA() error {
	if r.opts.EMA <= 0 {
		return nil // no EMA: evaluation and checkpoints use the raw weights (see emaOrParams)
	}
	r.emaN++
	d := math.Min(r.opts.EMA, (1+float64(r.emaN))/(10+float64(r.emaN)))
	args := make([]any, 0, 2*len(r.ema)+1)
	for _, e := range r.ema {
		args = append(args, e)
	}
	for _, p := range r.state.Params {
		args = append(args, p)
	}
	args = append(args, gtensors.FromScalar(float32(d)))
	out, err := r.emaExec.Call(args...)
	if err != nil {
		return fmt.Errorf("ema update: %w", err)
	}
	r.ema = out
	return nil
}

// emaOrParams is the EMA weights, or the raw ones when EMA is off. (The step
// donates the raw weights' buffers, so the EMA must never alias them.)
func (r *run) emaOrParams() []*gtensors.Tensor {
	if r.opts.EMA <= 0 {
		return r.state.Params
	}
	return r.ema
}

func (r *run) record(m Metrics) {
	r.history = append(r.history, m)
	if raw, err := json.Marshal(m); err == nil {
		r.metrics.Write(append(raw, '\n'))
		r.metrics.Sync()
	}
}

// save publishes a checkpoint of the current step and marks it last.
func (r *run) save() error {
	toWeights := func(ts []*gtensors.Tensor) (*backbone.Weights, error) {
		w := &backbone.Weights{Config: r.cfg.Model, Data: map[string][]float32{}, InvFreq: r.invFreq}
		return w, w.SetFromTensors(ts)
	}
	raw, err := toWeights(r.state.Params)
	if err != nil {
		return err
	}
	ema, err := toWeights(r.emaOrParams())
	if err != nil {
		return err
	}
	mm, vv := map[string][]float32{}, map[string][]float32{}
	for i, s := range r.cfg.Model.Specs() {
		if mm[s.Name], err = backbone.Float32s(r.state.M[i]); err != nil {
			return err
		}
		if vv[s.Name], err = backbone.Float32s(r.state.V[i]); err != nil {
			return err
		}
	}
	dir := checkpoint.StepDir(r.opts.Out, r.state.Step)
	t := checkpoint.Training{Config: r.cfg, Raw: raw, EMA: ema, M: mm, V: vv,
		State: checkpoint.TrainState{Step: r.state.Step, Seed: r.opts.Seed, EMAUpdates: r.emaN}}
	if _, err := checkpoint.SaveTraining(dir, t, artifact.Manifest{Stage: "train", Tool: r.opts.Tool, Backend: r.opts.Backend,
		Params: map[string]any{"step": r.state.Step}}); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := checkpoint.MarkLast(r.opts.Out, dir, r.opts.KeepLast); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	r.opts.Log.Info("checkpoint", "step", r.state.Step, "dir", dir)
	return nil
}

// resolvePrecision maps "auto" to bf16 mixed precision on the XLA backend (GPUs)
// and float32 on the pure-Go CPU backend.
func resolvePrecision(p string, b compute.Backend) string {
	if p == "" || p == "auto" {
		if strings.Contains(strings.ToLower(b.Name()), "xla") {
			return "bf16"
		}
		return "fp32"
	}
	return p
}
