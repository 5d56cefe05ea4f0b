package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/optim"
)

// Config is a training run. Its fields are the flags of `mdlm train` (same
// names, and the errors name them as flags: --seed, --data, ...); stages/train
// maps the flags onto it, and the defaults live there.
type Config struct {
	Data string // packed/v1 artifact directory (train.arrow, optional valid.arrow)

	// The denoiser: Backbone "dit" or "dimamba" (parameterization ar always
	// trains the causal transformer); Model a preset (tiny, small, medium,
	// tiny-dimamba) or "custom" with the sizes below.
	Backbone                    string
	Model                       string
	Hidden, Heads, Blocks, Cond int
	Dropout                     float64

	// The objective: subs, d3pm, sedd or ar; T discrete steps (0: continuous).
	Parameterization string
	T                int
	TimeConditioning bool
	Noise            string // noise schedule: loglinear, cosine, cosinesqr, linear, geometric

	// Optimisation: Steps optimizer steps of Accum micro-batches of Batch
	// sequences; AdamW with peak LR after Warmup steps, then Schedule (constant
	// or cosine); Clip the global gradient norm (0: off); EMA the decay of the
	// weights' moving average (0: off); Seed every draw.
	Steps, Batch, Accum int
	LR                  float64
	Warmup              int
	Schedule            string
	Clip, WeightDecay   float64
	EMA                 float64
	Seed                int64

	// Cadences, in optimizer steps: log a metrics record, validate (with the EMA
	// weights, EvalBlocks blocks of the valid split; 0: all), checkpoint into the
	// work directory, keeping KeepLast checkpoints.
	LogEvery, EvalEvery, EvalBlocks int
	CheckpointEvery, KeepLast       int
	Precision                       string // auto, fp32 or bf16 (mixed, float32 masters)

	// Gen-PPL at each validation: GenPPLSamples samples of GenPPLSteps reverse
	// steps drawn with the EMA weights and scored by the checkpoint GenPPLScorer
	// (a directory or hub:org/name; "" turns it off).
	GenPPLScorer               string
	GenPPLSamples, GenPPLSteps int

	// Fine-tuning: Init is the checkpoint the run starts from (a checkpoint/v1
	// or training work directory, a Lightning .ckpt, or hub:org/name[@revision]):
	// its weights, EMA and model sizes (Model "" or "custom" and zero sizes take
	// the checkpoint's; others must agree), with a fresh optimizer, or its AdamW
	// moments, step and EMA updates with InitOptimizer. ValidData validates on
	// that packed/v1 artifact's valid split instead of Data's.
	Init          string
	InitOptimizer bool
	ValidData     string

	// The reference's switches (diffusion.Objective; diffusion.py: _sample_t,
	// _forward_pass_diffusion): antithetic time sampling, the time floor,
	// importance sampling, change of variables, D3PM's subs masking.
	Antithetic, ImportanceSampling, ChangeOfVariables, SubsMasking bool
	SamplingEps                                                    float64
	// AdamW's betas and eps; LRMin the cosine schedule's floor (lr_min).
	Beta1, Beta2, AdamEps, LRMin float64
	// RandomCrop trains on blocks of 2L tokens, each batch cropped to L at a
	// random start (text8-crop; diffusion.py: _maybe_sub_sample).
	RandomCrop bool

	// StopAfter (testing) returns after this many steps of this call, as if the
	// process were killed (0: never); Run then reports ErrStopped.
	StopAfter int

	Log         *slog.Logger // nil: slog.Default()
	BackendName string       // recorded in the manifests of the work directory's checkpoints
}

// Progress is told of each optimizer step taken: the step, the total, the
// step's loss and the throughput so far.
type Progress func(step, total int, loss, tokensPerSec float64)

// ErrStopped reports a run stopped early on purpose (Config.StopAfter).
var ErrStopped = errors.New("stopped early")

// ErrNonFinite reports a NaN or Inf loss; the last good checkpoint is kept.
var ErrNonFinite = errors.New("train: non-finite loss")

// Result is a finished run.
type Result struct {
	Last        Metrics // the last step's record (with its validation, if it validated)
	Step        int     // optimizer steps taken in all (Config.Steps)
	DataDigest  string  // digest of the packed/v1 artifact trained on
	InitDigest  string  // digest of the checkpoint started from (Config.Init), "" without
	ValidDigest string  // digest of Config.ValidData when it was read, "" otherwise
	// Objective is the switches trained with (recorded in the manifest when
	// not the default, so that eval does what training did).
	Objective diffusion.Objective

	t *trainer
}

// Run trains in the work directory work until cfg.Steps, resuming from the last
// checkpoint there if there is one (a checkpoint of another model or seed is
// refused). On an error or an interrupt (ctx), the last checkpoint stays in
// work for the next call; a run stopped by StopAfter returns ErrStopped.
// progress (nil: none) is told of every step.
func Run(ctx context.Context, b compute.Backend, cfg Config, work string, progress Progress) (*Result, error) {
	t, err := start(ctx, b, cfg, work, progress)
	if err != nil {
		return nil, err
	}
	defer t.close()
	last, err := t.loop(ctx)
	if err != nil {
		return nil, err
	}
	if t.state.Step < cfg.Steps {
		return nil, fmt.Errorf("train: stopped at step %d of %d: %w", t.state.Step, cfg.Steps, ErrStopped)
	}
	return &Result{Last: *last, Step: t.state.Step, DataDigest: t.dataDigest, InitDigest: t.initDigest,
		ValidDigest: t.validDigest, Objective: t.objective(), t: t}, nil
}

// trainer holds a training run's state.
type trainer struct {
	b       compute.Backend
	cfg     Config
	ck      checkpoint.Config
	model   diffusion.Model
	step    *Step
	state   *State
	ema     []*tensors.Tensor
	emaN    int
	emaExec *Exec
	invFreq []float32
	eval    *evaluate.Evaluator
	metrics *os.File
	history []Metrics

	log          *slog.Logger
	work         string // the work directory: checkpoints/, metrics.jsonl
	train, valid *datasets.PackedArrow
	dataDigest   string
	validDigest  string          // Config.ValidData's, when validation reads it
	initDigest   string          // Config.Init's
	crop         *diffusion.Crop // Config.RandomCrop
	progress     Progress
	scorer       *evaluate.Scorer // Config.GenPPLScorer, nil without
	bestStep     int              // the step with the lowest validation NELBO so far (0: none yet)
	bestNLL      float64
	validated    int // the last step whose validation completed
}

// start opens the data, builds the model (from Config.Init when set) and
// restores or initialises the state.
func start(ctx context.Context, b compute.Backend, cfg Config, work string, progress Progress) (*trainer, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := validateSwitches(cfg); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	pm, meta, err := artifact.Open[artifact.PackedMeta](cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("train: --data: %w", err)
	}
	// The data's tokenizer file (its own tokenizer.json), copied into the checkpoint.
	if meta.Tokenizer, err = artifact.ResolveTokenizer(cfg.Data, meta.Tokenizer); err != nil {
		return nil, fmt.Errorf("train: --data: %w", err)
	}
	d, err := openData(cfg, meta)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	owned := false // once the trainer owns the data, t.close releases it
	defer func() {
		if !owned {
			d.close()
		}
	}()
	L, err := d.modelLength(cfg)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	src, err := openInit(ctx, cfg, work)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	ck, err := modelConfig(cfg, meta, L, src)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	m, err := methodModel(ck, cfg.objective())
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t, err := newTrainer(b, cfg, ck, m, work, src)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.train, t.valid, t.dataDigest, t.validDigest, t.progress = d.train, d.valid, pm.Digest(), d.validDigest, progress
	if src != nil {
		t.initDigest = src.digest
	}
	if cfg.RandomCrop {
		t.crop = &diffusion.Crop{L: L, BOS: int32(meta.BOS), EOS: int32(meta.EOS)}
		t.eval.Crop = t.crop
	}
	owned = true
	if err := t.openScorer(); err != nil {
		t.close()
		return nil, fmt.Errorf("train: %w", err)
	}
	return t, nil
}

// modelConfig is the checkpoint configuration the run trains: the backbone
// from the --init checkpoint, the preset or the custom sizes, and the
// objective (the method, and the switches when not the reference's defaults,
// recorded in config.json for eval and sample).
func modelConfig(cfg Config, meta artifact.PackedMeta, L int, src *initSource) (checkpoint.Config, error) {
	var bc backbone.Config
	var err error
	if src != nil {
		bc, err = initModel(cfg, src.model, meta, L)
		if err == nil && src.method.Parameterization != "" && src.method != cfg.method() {
			cfg.Log.Warn("the --init checkpoint was trained with another objective; training with the flags'",
				"checkpoint", fmt.Sprintf("%+v", src.method), "flags", fmt.Sprintf("%+v", cfg.method()))
		}
	} else {
		bc, err = newModel(cfg, meta, L)
	}
	if err != nil {
		return checkpoint.Config{}, err
	}
	bc.Dropout = cfg.Dropout
	if err := bc.Validate(); err != nil {
		return checkpoint.Config{}, err
	}
	return checkpoint.Config{Model: bc, Tokenizer: meta.Tokenizer, Method: cfg.method(),
		Objective: checkpoint.RecordedObjective(cfg.objective())}, nil
}

// method is the objective the flags name.
func (cfg Config) method() checkpoint.Method {
	return checkpoint.Method{Parameterization: cfg.Parameterization, T: cfg.T,
		TimeConditioning: cfg.TimeConditioning, Noise: cfg.Noise}.WithBounds()
}

// newModel is the backbone of a run from scratch: the preset or the custom
// sizes, the data's vocabulary and mask.
func newModel(cfg Config, meta artifact.PackedMeta, L int) (backbone.Config, error) {
	vocab, mask := meta.VocabSize, meta.MaskIndex
	arch := backbone.Arch(cfg.Backbone)
	if arch == "" {
		arch = backbone.DiT
	}
	if cfg.Parameterization == "ar" {
		if arch == backbone.DiMamba {
			return backbone.Config{}, fmt.Errorf("--backbone dimamba: parameterization ar trains the causal transformer; use subs, d3pm or sedd")
		}
		arch = backbone.AR
	}
	if cfg.Model == "custom" || cfg.Model == "" {
		bc := backbone.Config{Arch: arch, Vocab: int(vocab), Hidden: cfg.Hidden, Heads: cfg.Heads, Blocks: cfg.Blocks,
			Cond: cfg.Cond, Length: L, MaskIndex: int(mask)}
		if arch == backbone.DiMamba {
			bc.Heads = 0
			bc = bc.WithMambaDefaults()
		}
		return bc, nil
	}
	bc, err := backbone.Preset(cfg.Model, arch, int(vocab), L)
	if err != nil {
		return backbone.Config{}, err
	}
	bc.MaskIndex = int(mask)
	return bc, nil
}

// methodModel is the checkpoint's objective with the training switches
// (the reference's: antithetic t floored at sampling_eps 1e-3).
func methodModel(ck checkpoint.Config, obj diffusion.Objective) (diffusion.Model, error) {
	m, err := ck.Diffusion()
	if err != nil {
		return m, err
	}
	m = m.WithObjective(obj)
	return m, m.Validate()
}

// objective is the switches of the run.
func (cfg Config) objective() diffusion.Objective {
	return diffusion.Objective{Antithetic: cfg.Antithetic, SamplingEps: cfg.SamplingEps, ImportanceSampling: cfg.ImportanceSampling,
		ChangeOfVariables: cfg.ChangeOfVariables, SubsMasking: cfg.SubsMasking, RandomCrop: cfg.RandomCrop}
}

// objective is what the run's checkpoints record: the model's switches and
// the random crop.
func (t *trainer) objective() diffusion.Objective {
	o := t.model.Objective()
	o.RandomCrop = t.cfg.RandomCrop
	return o
}

func (t *trainer) close() {
	(&splits{train: t.train, valid: t.valid}).close()
	if t.metrics != nil {
		t.metrics.Close()
	}
}

func newTrainer(b compute.Backend, cfg Config, ck checkpoint.Config, m diffusion.Model, work string, src *initSource) (*trainer, error) {
	lr, err := optim.NewLRSchedule(cfg.Schedule, cfg.LR, cfg.Warmup, cfg.Steps, cfg.LRMin)
	if err != nil {
		return nil, fmt.Errorf("train: --lr-min: %w", err)
	}
	adam := optim.AdamW{LR: cfg.LR, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.AdamEps, WeightDecay: cfg.WeightDecay}
	t := &trainer{b: b, cfg: cfg, ck: ck, model: m, log: cfg.Log, work: work}
	if err := t.restoreOrInit(src); err != nil {
		return nil, err
	}
	if t.step, err = NewStep(b, m, adam, lr, cfg.Clip, t.invFreq); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	switch prec := resolvePrecision(cfg.Precision, b); prec {
	case "bf16":
		t.step.MixedPrecision = dtypes.BFloat16
	case "fp32":
	default:
		return nil, fmt.Errorf("train: --precision %q: want auto, fp32 or bf16", cfg.Precision)
	}
	t.log.Info("precision", "precision", resolvePrecision(cfg.Precision, b))
	t.eval = evaluate.NewEvaluator(b, m, t.invFreq)
	t.emaExec = newEMAExec(b, len(ck.Model.Specs()))
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	t.metrics, err = os.OpenFile(filepath.Join(work, MetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	return t, err
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
