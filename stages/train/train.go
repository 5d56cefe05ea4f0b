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
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/optim"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
	step "github.com/mdlm-go/mdlm/train"
)

// Def declares the stage.
var Def = stage.Def{Kind: "train", Version: 5, Output: checkpoint.Type,
	Help:   "Train MDLM, D3PM, SEDD or the AR baseline on packed/v1 data; publishes checkpoint/v1 (resumable).",
	Inputs: []stage.Input{{Name: "data", Type: datasets.PackedType}},
	New:    func() stage.Options { return &Options{} }, Resumable: true}

// Options are the stage's flags.
type Options struct {
	Data             string  `required:"" input:"data" help:"packed/v1 artifact (train.arrow, optional valid.arrow)." type:"existingdir"`
	Out              string  `short:"o" required:"" output:"" help:"checkpoint/v1 to publish when training ends; until then checkpoints and metrics live in <out>.work, and rerunning the same command resumes there." type:"path"`
	Backbone         string  `default:"dit" enum:"dit,dimamba" help:"Denoiser network: the DiT or the bidirectional Mamba DiMamba (parameterization ar always uses the causal transformer)."`
	Model            string  `default:"custom" help:"tiny, small, medium (DiT), tiny-dimamba (DiMamba), or custom (sizes below)."`
	Hidden           int     `default:"128" help:"Custom: hidden size D."`
	Heads            int     `default:"4" help:"Custom: attention heads (DiT, AR)."`
	Blocks           int     `default:"2" help:"Custom: transformer or Mamba blocks."`
	Cond             int     `default:"64" help:"Custom: timestep-embedding width (cond_dim)."`
	Dropout          float64 `default:"0.1" help:"Residual dropout."`
	Parameterization string  `default:"subs" enum:"subs,d3pm,sedd,ar" help:"Objective."`
	T                int     `name:"T" help:"Discrete time steps (0: continuous)."`
	TimeConditioning bool    `help:"Condition the backbone on sigma (SEDD, D3PM)."`
	Noise            string  `default:"loglinear" enum:"loglinear,cosine,cosinesqr,linear,geometric" help:"Noise schedule."`
	Steps            int     `default:"1000" help:"Optimizer steps."`
	Batch            int     `default:"16" help:"Sequences per micro-batch."`
	Accum            int     `default:"1" help:"Micro-batches per optimizer step (gradient accumulation; global batch = batch x accum)."`
	LR               float64 `default:"3e-4" help:"Peak learning rate."`
	Warmup           int     `default:"2500" help:"Warmup steps."`
	Schedule         string  `default:"constant" enum:"constant,cosine" help:"LR schedule after warmup."`
	Clip             float64 `default:"1.0" help:"Global gradient-norm clip (0: off)."`
	WeightDecay      float64 `help:"AdamW weight decay."`
	EMA              float64 `default:"0.9999" help:"EMA decay (0: off)."`
	Seed             int64   `default:"1" help:"Seed: data order, noise, dropout, initialisation."`
	LogEvery         int     `default:"10" help:"Log and record metrics every N steps." cosmetic:""`
	EvalEvery        int     `default:"500" help:"Validate (EMA weights) every N steps."`
	EvalBlocks       int     `help:"Validation blocks (0: the whole valid split)."`
	CheckpointEvery  int     `default:"500" help:"Checkpoint every N steps into the work directory (a killed run resumes from the last one)." cosmetic:""`
	KeepLast         int     `default:"3" help:"Checkpoints to keep in the work directory." cosmetic:""`
	Precision        string  `default:"auto" enum:"auto,fp32,bf16" help:"bf16 mixed precision (float32 masters) or fp32; auto: bf16 on XLA/GPU, fp32 on CPU."`
	GenPPLScorer     string  `name:"gen-ppl-scorer" help:"At each validation also draw --gen-ppl-samples samples with the EMA weights and score them with this checkpoint (GPT-2 or AR; a directory or hub:org/name), as the reference's val/gen_ppl." digest:"file"`
	GenPPLSamples    int     `name:"gen-ppl-samples" default:"8" help:"Samples drawn at each validation for --gen-ppl-scorer."`
	GenPPLSteps      int     `name:"gen-ppl-steps" default:"1000" help:"Reverse steps of those samples (the reference's sampling.steps)."`

	StopAfter int `kong:"-"` // testing: return after this many steps of this call, as if killed (0: never)
}

// Build implements stage.Builder: train in dirs.Work (resuming what is there)
// and write the final checkpoint into dirs.Out.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	b, desc, err := env.Backend()
	if err != nil {
		return artifact.Manifest{}, err
	}
	log := env.Logger()
	log.Info("training", "backend", desc, "data", o.Data, "work", dirs.Work)
	bar := env.StartProgress("train")
	defer bar.Done()
	r, err := start(b, *o, log, dirs.Work, func(s, total int, loss, tps float64) {
		bar.Update(s, total, fmt.Sprintf("loss %.3f  %.0f tok/s", loss, tps))
	})
	if err != nil {
		return artifact.Manifest{}, err
	}
	defer r.close()
	r.backend = desc
	m, err := r.loop(ctx)
	if err != nil {
		return artifact.Manifest{}, err
	}
	if r.state.Step < o.Steps { // StopAfter
		return artifact.Manifest{}, fmt.Errorf("train: stopped at step %d of %d: %w", r.state.Step, o.Steps, ErrStopped)
	}
	log.Info("done", "step", m.Step, "loss", m.Loss, "val_ppl", m.ValPPL)
	return r.final(dirs.Out)
}

// copyArtifact copies a published artifact's manifest and files (not its stat
// cache) into dst: the best checkpoint travels inside the published run, a
// checkpoint/v1 of its own that eval and sample open as <out>/best.
func copyArtifact(src, dst string) error {
	m, err := artifact.Read(src, "")
	if err != nil {
		return err
	}
	// The copy's manifest carries no creation time and backend, so that a
	// resumed run publishes the same bytes as an uninterrupted one.
	m.Created, m.Backend = time.Time{}, ""
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, artifact.ManifestName), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	for _, f := range m.Files {
		to := filepath.Join(dst, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := filehash.CopyFile(filepath.Join(src, filepath.FromSlash(f.Path)), to); err != nil {
			return err
		}
	}
	return nil
}

// ErrStopped reports a run stopped early on purpose (Options.StopAfter).
var ErrStopped = errors.New("stopped early")

// Train runs (or resumes) the training loop in the run directory work without
// publishing anything: the checkpoints/ and metrics.jsonl of a run in progress.
func Train(ctx context.Context, b compute.Backend, opts Options, log *slog.Logger, work string) (*Metrics, error) {
	r, err := start(b, opts, log, work, nil)
	if err != nil {
		return nil, err
	}
	defer r.close()
	return r.loop(ctx)
}

// start opens the data, builds the model and restores or initialises the state.
func start(b compute.Backend, opts Options, log *slog.Logger, work string, progress func(int, int, float64, float64)) (*run, error) {
	if log == nil {
		log = slog.Default()
	}
	pm, meta, err := artifact.Open[datasets.PackedMeta](opts.Data)
	if err != nil {
		return nil, fmt.Errorf("train: --data: %w", err)
	}
	trainData, validData, err := openData(opts, meta, log)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	owned := false // once the run owns the data, r.close releases it
	defer func() {
		if !owned {
			trainData.Close()
			if validData != nil {
				validData.Close()
			}
		}
	}()
	cfg, err := modelConfig(opts, meta, trainData.L)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	m, err := methodModel(cfg)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r, err := newRun(b, opts, cfg, m, log, work)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	r.train, r.valid, r.dataDigest, r.progress = trainData, validData, pm.Digest(), progress
	owned = true
	if err := r.openScorer(); err != nil {
		r.close()
		return nil, fmt.Errorf("train: %w", err)
	}
	return r, nil
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
	ValGenPPL    float64 `json:"val_gen_ppl,omitempty"` // generative perplexity of samples (--gen-ppl-scorer)
	ValEntropy   float64 `json:"val_entropy,omitempty"` // their mean unigram entropy
}

// ErrNonFinite reports a NaN or Inf loss; the last good checkpoint is kept.
var ErrNonFinite = errors.New("train: non-finite loss")

func modelConfig(opts Options, meta datasets.PackedMeta, L int) (checkpoint.Config, error) {
	vocab, mask, tok := meta.VocabSize, meta.MaskIndex, meta.Tokenizer
	arch := backbone.Arch(opts.Backbone)
	if arch == "" {
		arch = backbone.DiT
	}
	if opts.Parameterization == "ar" {
		if arch == backbone.DiMamba {
			return checkpoint.Config{}, fmt.Errorf("--backbone dimamba: parameterization ar trains the causal transformer; use subs, d3pm or sedd")
		}
		arch = backbone.AR
	}
	var bc backbone.Config
	if opts.Model == "custom" || opts.Model == "" {
		bc = backbone.Config{Arch: arch, Vocab: int(vocab), Hidden: opts.Hidden, Heads: opts.Heads, Blocks: opts.Blocks,
			Cond: opts.Cond, Length: L, MaskIndex: int(mask)}
		if arch == backbone.DiMamba {
			bc.Heads = 0
			bc = bc.WithMambaDefaults()
		}
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
	return checkpoint.Config{Model: bc, Tokenizer: tok, Method: checkpoint.Method{Parameterization: opts.Parameterization, T: opts.T,
		TimeConditioning: opts.TimeConditioning, Noise: opts.Noise}.WithBounds()}, nil
}

// methodModel is the checkpoint's objective with the training settings of the
// reference: t floored at sampling_eps 1e-3, antithetic sampling.
func methodModel(cfg checkpoint.Config) (diffusion.Model, error) {
	m, err := cfg.Diffusion()
	m.SamplingEps, m.Antithetic = 1e-3, true
	return m, err
}

// run holds a training run's state.
type run struct {
	b       compute.Backend
	opts    Options
	cfg     checkpoint.Config
	model   diffusion.Model
	step    *step.Step
	state   *step.State
	ema     []*tensors.Tensor
	emaN    int
	emaExec *Exec
	invFreq []float32
	eval    *step.Evaluator
	metrics *os.File
	history []Metrics

	log          *slog.Logger
	work         string // the run directory: checkpoints/, metrics.jsonl
	backend      string
	train, valid *datasets.PackedArrow
	dataDigest   string
	progress     func(step, total int, loss, tokensPerSec float64)
	scorer       *step.Scorer // --gen-ppl-scorer, nil without
	bestStep     int          // the step with the lowest validation NELBO so far (0: none yet)
	bestNLL      float64
	validated    int // the last step whose validation completed
}

func (r *run) close() {
	r.train.Close()
	if r.valid != nil {
		r.valid.Close()
	}
	if r.metrics != nil {
		r.metrics.Close()
	}
}

func newRun(b compute.Backend, opts Options, cfg checkpoint.Config, m diffusion.Model, log *slog.Logger, work string) (*run, error) {
	lr, err := optim.NewLRSchedule(opts.Schedule, opts.LR, opts.Warmup, opts.Steps)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	adam := optim.DefaultAdamW()
	adam.LR, adam.WeightDecay = opts.LR, opts.WeightDecay
	r := &run{b: b, opts: opts, cfg: cfg, model: m, log: log, work: work}
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
	log.Info("precision", "precision", resolvePrecision(opts.Precision, b))
	r.eval = step.NewEvaluator(b, m, r.invFreq)
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
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	r.metrics, err = os.OpenFile(filepath.Join(work, MetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	return r, err
}

// restoreOrInit continues from the work directory's last checkpoint, if it has
// one, or initialises the weights.
func (r *run) restoreOrInit() error {
	last, _ := checkpoint.Resolve(r.work)
	if last != r.work {
		t, err := checkpoint.LoadTraining(last)
		if err != nil {
			return fmt.Errorf("train: resume from %s: %w", last, err)
		}
		if t.Config.Model != r.cfg.Model || t.Config.Method != r.cfg.Method {
			return fmt.Errorf("train: %s holds a run of model %+v / %+v, the options give %+v / %+v: remove it to start over",
				r.work, t.Config.Model, t.Config.Method, r.cfg.Model, r.cfg.Method)
		}
		if t.State.Seed != r.opts.Seed {
			return fmt.Errorf("train: %s holds a run with --seed %d, not %d: remove it to start over", r.work, t.State.Seed, r.opts.Seed)
		}
		r.invFreq = t.Raw.RotaryInvFreqOrDefault()
		r.state = &step.State{Params: t.Raw.Tensors(), Step: t.State.Step}
		for _, s := range r.cfg.Model.Specs() {
			r.state.M = append(r.state.M, tensors.FromFlatDataAndDimensions(t.M[s.Name], s.Shape...))
			r.state.V = append(r.state.V, tensors.FromFlatDataAndDimensions(t.V[s.Name], s.Shape...))
		}
		r.ema, r.emaN = t.EMA.Tensors(), t.State.EMAUpdates
		r.bestStep, r.bestNLL, r.validated = t.State.BestStep, t.State.BestValNLL, t.State.ValidatedStep
		r.log.Info("resumed", "checkpoint", last, "step", t.State.Step)
		return nil
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
	x0, mask := data.Rows(idx)
	bt := step.Batch{B: B, L: L, X0: x0, TokenMask: mask}
	if r.model.Param != diffusion.ARP {
		rng := rand.New(rand.NewPCG(uint64(r.opts.Seed), uint64(k)))
		bt.XT, bt.T, bt.Sigma, bt.DSigma = diffusion.NoiseBatch(r.model, x0, B, L, rng)
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

func (r *run) loop(ctx context.Context) (*Metrics, error) {
	opts, trainData := r.opts, r.train
	perms := &permCache{seed: opts.Seed, n: trainData.NumRows()}
	var last Metrics
	start, tokens := time.Now(), 0
	taken := 0
	if r.state.Step > 0 && r.validated < r.state.Step && r.validationDue() {
		// Resumed from a checkpoint written while this step's validation was
		// interrupted: validate it now, as an uninterrupted run did.
		if _, err := r.validate(ctx); err != nil {
			return nil, err
		}
	}
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
		var rngs []*tensors.Tensor
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
				ErrNonFinite, k+1, res.Loss, filepath.Join(r.work, checkpoint.CheckpointsDir))
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
			r.log.Info("step", "step", last.Step, "loss", fmt.Sprintf("%.4f", last.Loss), "lr", last.LR,
				"grad_norm", fmt.Sprintf("%.3f", last.GradNorm), "tokens_per_sec", int(last.TokensPerSec))
		}
		if r.progress != nil {
			r.progress(r.state.Step, opts.Steps, last.Loss, last.TokensPerSec)
		}
		if r.validationDue() {
			vm, err := r.validate(ctx)
			if err != nil && ctx.Err() != nil { // interrupted mid-evaluation: the step itself is done, keep it
				if err := r.save(); err != nil {
					return nil, err
				}
				return &last, ctx.Err()
			}
			if err != nil {
				return nil, err
			}
			last.ValNLL, last.ValPPL, last.ValGenPPL, last.ValEntropy = vm.ValNLL, vm.ValPPL, vm.ValGenPPL, vm.ValEntropy
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
	args = append(args, tensors.FromScalar(float32(d)))
	out, err := r.emaExec.Call(args...)
	if err != nil {
		return fmt.Errorf("ema update: %w", err)
	}
	r.ema = out
	return nil
}

// emaOrParams is the EMA weights, or the raw ones when EMA is off. (The step
// donates the raw weights' buffers, so the EMA must never alias them.)
func (r *run) emaOrParams() []*tensors.Tensor {
	if r.opts.EMA <= 0 {
		return r.state.Params
	}
	return r.ema
}

func (r *run) record(m Metrics) {
	r.history = append(r.history, m)
	raw, err := json.Marshal(m)
	if err != nil { // checkFinite keeps non-finite values out; never drop a line unreported
		r.log.Error("metrics record not written", "file", MetricsFile, "step", m.Step, "err", err)
		return
	}
	r.metrics.Write(append(raw, '\n'))
	r.metrics.Sync()
}

// snapshot is the current training state as a checkpoint.
func (r *run) snapshot() (checkpoint.Training, error) {
	toWeights := func(ts []*tensors.Tensor) (*backbone.Weights, error) {
		w := &backbone.Weights{Config: r.cfg.Model, Data: map[string][]float32{}, InvFreq: r.invFreq}
		return w, w.SetFromTensors(ts)
	}
	var t checkpoint.Training
	raw, err := toWeights(r.state.Params)
	if err != nil {
		return t, err
	}
	ema, err := toWeights(r.emaOrParams())
	if err != nil {
		return t, err
	}
	mm, vv := map[string][]float32{}, map[string][]float32{}
	for i, s := range r.cfg.Model.Specs() {
		if mm[s.Name], err = backbone.Float32s(r.state.M[i]); err != nil {
			return t, err
		}
		if vv[s.Name], err = backbone.Float32s(r.state.V[i]); err != nil {
			return t, err
		}
	}
	return checkpoint.Training{Config: r.cfg, Raw: raw, EMA: ema, M: mm, V: vv,
		State: checkpoint.TrainState{Step: r.state.Step, Seed: r.opts.Seed, EMAUpdates: r.emaN, BestStep: r.bestStep, BestValNLL: r.bestNLL, ValidatedStep: r.validated}}, nil
}

// save publishes a checkpoint of the current step in the work directory and
// marks it last.
func (r *run) save() error {
	t, err := r.snapshot()
	if err != nil {
		return err
	}
	dir := checkpoint.StepDir(r.work, r.state.Step)
	if _, err := checkpoint.SaveTraining(dir, t, artifact.Manifest{Stage: "train", Backend: r.backend,
		Params: map[string]any{"step": r.state.Step}}); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := checkpoint.MarkLast(r.work, dir, r.opts.KeepLast); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	r.log.Info("checkpoint", "step", r.state.Step, "dir", dir)
	return nil
}

// final writes the finished run into dir, the checkpoint/v1 artifact: the
// training checkpoint of the last step (weights, EMA, optimizer state, so a
// longer run can continue from it), metrics.jsonl without timings (one record
// per step and kind, so a resumed run's file equals an uninterrupted one's) and
// loss.png.
func (r *run) final(dir string) (artifact.Manifest, error) {
	t, err := r.snapshot()
	if err != nil {
		return artifact.Manifest{}, err
	}
	if err := checkpoint.WriteTraining(dir, t); err != nil {
		return artifact.Manifest{}, fmt.Errorf("train: %w", err)
	}
	ms, err := ReadMetrics(r.work)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("train: %w", err)
	}
	ms = Reproducible(ms)
	if err := WriteMetrics(filepath.Join(dir, MetricsFile), ms); err != nil {
		return artifact.Manifest{}, fmt.Errorf("train: %w", err)
	}
	if err := writePlot(filepath.Join(dir, "loss.png"), ms); err != nil {
		return artifact.Manifest{}, fmt.Errorf("train: loss plot: %w", err)
	}
	best := filepath.Join(r.work, checkpoint.CheckpointsDir, checkpoint.BestDir)
	if _, err := os.Stat(best); err == nil {
		if err := copyArtifact(best, filepath.Join(dir, checkpoint.BestDir)); err != nil {
			return artifact.Manifest{}, fmt.Errorf("train: best checkpoint: %w", err)
		}
	}
	return artifact.Manifest{Backend: r.backend, Inputs: map[string]string{"data": r.dataDigest},
		Params: artifact.Params(checkpoint.Meta{Step: r.state.Step})}, nil
}

// validationDue reports whether the current step validates.
func (r *run) validationDue() bool {
	o := r.opts
	return r.valid != nil && o.EvalEvery > 0 && (r.state.Step%o.EvalEvery == 0 || r.state.Step == o.Steps)
}

// validate evaluates the EMA weights on the valid split (and, with a scorer,
// the generative perplexity of samples), records the metrics and keeps the
// best checkpoint. An interrupted validation returns the context's error and
// leaves the step unvalidated, so a resumed run validates it.
func (r *run) validate(ctx context.Context) (Metrics, error) {
	o := r.opts
	res, err := r.eval.Perplexity(ctx, r.emaOrParams(), r.valid, o.Batch, o.Seed, o.EvalBlocks)
	if err != nil {
		return Metrics{}, err
	}
	vm := Metrics{Step: r.state.Step, ValNLL: res.NLL, ValPPL: res.PPL}
	if err := checkFinite(vm); err != nil {
		return Metrics{}, err
	}
	if r.scorer != nil {
		g, err := r.genPPL(ctx, r.valid.L)
		if err != nil && ctx.Err() != nil {
			return Metrics{}, err
		}
		if err != nil {
			return Metrics{}, fmt.Errorf("train: validation gen-ppl at step %d: %w", r.state.Step, err)
		}
		vm.ValGenPPL, vm.ValEntropy = g.GenPPL, g.Entropy
		if err := checkFinite(vm); err != nil {
			return Metrics{}, err
		}
	}
	r.record(vm)
	attrs := []any{"step", vm.Step, "val_nll", fmt.Sprintf("%.4f", res.NLL),
		"val_ppl", fmt.Sprintf("%.2f", res.PPL), "unigram_ppl", fmt.Sprintf("%.2f", res.UnigramPPL)}
	if r.opts.GenPPLScorer != "" {
		attrs = append(attrs, "val_gen_ppl", fmt.Sprintf("%.2f", vm.ValGenPPL), "val_entropy", fmt.Sprintf("%.3f", vm.ValEntropy))
	}
	r.log.Info("validation (EMA weights)", attrs...)
	if err := r.keepBest(res.NLL); err != nil {
		return Metrics{}, err
	}
	r.validated = r.state.Step
	return vm, nil
}

// openScorer loads --gen-ppl-scorer (a directory or a hub reference).
func (r *run) openScorer() error {
	if r.opts.GenPPLScorer == "" {
		return nil
	}
	if r.model.Param == diffusion.ARP {
		return fmt.Errorf("--gen-ppl-scorer: sampling an AR model during validation is not supported")
	}
	if r.cfg.Tokenizer == "" {
		return fmt.Errorf("--gen-ppl-scorer: the training data names no tokenizer to decode samples with")
	}
	ck, err := checkpoint.OpenRef(context.Background(), r.opts.GenPPLScorer, r.log)
	if err != nil {
		return fmt.Errorf("--gen-ppl-scorer: %w", err)
	}
	r.scorer, err = step.NewScorer(r.b, ck.Config.Model, ck.ForInference(), ck.Config.Tokenizer)
	if err != nil {
		return fmt.Errorf("--gen-ppl-scorer %s: %w", r.opts.GenPPLScorer, err)
	}
	return nil
}

// genPPL is the reference's validation sampling: --gen-ppl-samples rows of
// the model length drawn with the EMA weights (ddpm_cache for loglinear SUBS,
// ddpm otherwise, analytic for SEDD; seeded by (seed, step)), decoded with the
// data's tokenizer and scored by the gen-PPL scorer.
func (r *run) genPPL(ctx context.Context, L int) (step.GenResult, error) {
	w := &backbone.Weights{Config: r.cfg.Model, Data: map[string][]float32{}, InvFreq: r.invFreq}
	if err := w.SetFromTensors(r.emaOrParams()); err != nil {
		return step.GenResult{}, err
	}
	m := r.model
	kind := sampler.DDPM
	_, loglinear := m.Schedule.(diffusion.LogLinear)
	switch {
	case m.Param == diffusion.SEDD:
		kind = sampler.Analytic
	case m.Param == diffusion.SUBS && loglinear:
		kind = sampler.DDPMCache
	}
	s, err := sampler.New(r.b, m, w, r.opts.Seed*1_000_003+int64(r.state.Step), nil)
	if err != nil {
		return step.GenResult{}, err
	}
	N := max(1, r.opts.GenPPLSamples)
	prior := make([]int32, N*L)
	for i := range prior {
		prior[i] = int32(m.Backbone.MaskIndex)
	}
	res, err := s.Sample(ctx, sampler.Options{Kind: kind, Steps: max(1, r.opts.GenPPLSteps), Eps: 1e-5, NoiseRemoval: true}, prior, N, L, nil)
	if err != nil {
		return step.GenResult{}, err
	}
	tok, err := tokenizer.Load(r.cfg.Tokenizer)
	if err != nil {
		return step.GenResult{}, err
	}
	vocab, err := tokenizer.ForModel(tok)
	if err != nil {
		return step.GenResult{}, err
	}
	rows := make([]datasets.Sample, N)
	for i := range rows {
		ids := res.Tokens[i*L : (i+1)*L]
		ints := make([]int, L)
		for j, x := range ids {
			ints[j] = int(x)
		}
		text, err := vocab.Decode(ints)
		if err != nil {
			return step.GenResult{}, err
		}
		rows[i] = datasets.Sample{Index: int64(i), Tokens: ids, Text: text}
	}
	return r.scorer.GenPPL(ctx, rows, step.Scoring{Batch: min(8, N), MaxLength: L, Context: 1024})
}

// keepBest saves the current state as checkpoints/best when its validation
// NELBO is the lowest so far (the reference's ModelCheckpoint on val/nll).
func (r *run) keepBest(nll float64) error {
	if r.bestStep != 0 && nll >= r.bestNLL {
		return nil
	}
	r.bestStep, r.bestNLL = r.state.Step, nll
	t, err := r.snapshot()
	if err != nil {
		return err
	}
	dir := filepath.Join(r.work, checkpoint.CheckpointsDir, checkpoint.BestDir)
	if _, err := checkpoint.SaveTraining(dir, t, artifact.Manifest{Stage: "train", Backend: r.backend,
		Params: map[string]any{"step": r.state.Step, "val_nll": nll}}); err != nil {
		return fmt.Errorf("train: best checkpoint: %w", err)
	}
	r.log.Info("best checkpoint", "step", r.state.Step, "val_nll", fmt.Sprintf("%.4f", nll))
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
