// Package train is the `mdlm train` stage: it maps its flags onto a
// train.Config, trains in the work directory stage.Execute gives it (a rerun
// of the same command resumes there; see package train for the recipe, the
// reproducibility contract and the work directory's layout) and writes the
// finished run as a checkpoint/v1 artifact: the last step's weights, EMA and
// optimizer state, metrics.jsonl, loss.png and the best checkpoint as best/.
package train

import (
	"context"
	"fmt"
	"reflect"
	"strconv"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/train"
)

// Def declares the stage.
var Def = stage.Def{Kind: "train", Version: 5, Output: artifact.CheckpointType,
	Help: "Train MDLM, D3PM, SEDD or the AR baseline on packed/v1 data; publishes checkpoint/v1 (resumable).",
	Inputs: []stage.Input{{Name: "data", Type: artifact.PackedType},
		{Name: "init", Type: artifact.CheckpointType, Optional: true}, {Name: "valid", Type: artifact.PackedType, Optional: true}},
	New: func() stage.Options { return &Options{} }, Resumable: true}

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

	Init               string  `input:"init" help:"Fine-tune: start from this checkpoint (a checkpoint/v1 or training work directory, a Lightning .ckpt, or hub:org/name[@revision]): its weights, EMA and model sizes (size flags left at their defaults; others must agree), a fresh optimizer. The data must have the model's vocabulary." digest:"file"`
	InitOptimizer      bool    `help:"With --init: continue its AdamW moments, step and EMA updates too (a checkpoint written by mdlm train); --steps then counts from its step."`
	ValidData          string  `input:"valid" help:"Validate on this packed/v1 artifact's valid split instead of --data's (tokenized alike; the reference's data=openwebtext validates on WikiText-103)." type:"existingdir" digest:"file"`
	ImportanceSampling bool    `help:"Draw t so the log move chance is uniform and weight the continuous SUBS loss by -f_0 (training.importance_sampling; loglinear or linear noise)."`
	ChangeOfVariables  bool    `help:"Condition on t and mask with move chance exp(f_0 + t(f_T - f_0)), weight -f_0 (training.change_of_variables; loglinear or linear noise)."`
	SubsMasking        bool    `help:"D3PM: push the [MASK] logit by -1e6 before the softmax (subs_masking)."`
	Antithetic         bool    `default:"true" negatable:"" help:"Stratify the batch's times, one per interval [i/B, (i+1)/B) (training.antithetic_sampling)."`
	SamplingEps        float64 `default:"1e-3" help:"Time floor: t = (1 - eps)u + eps (training.sampling_eps)."`
	Beta1              float64 `name:"beta1" default:"0.9" help:"AdamW beta1 (optim.beta1)."`
	Beta2              float64 `name:"beta2" default:"0.999" help:"AdamW beta2 (optim.beta2)."`
	AdamEps            float64 `name:"adam-eps" default:"1e-8" help:"AdamW eps (optim.eps)."`
	LRMin              float64 `name:"lr-min" default:"1e-6" help:"Floor of --schedule cosine (lr_scheduler.lr_min)."`
	RandomCrop         bool    `help:"text8-crop: --data blocks hold 2L tokens; each batch is cropped to L at a random start, BOS first (the model's length is L)."`

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
	cfg := o.config()
	cfg.Log, cfg.BackendName = log, desc
	res, err := train.Run(ctx, b, cfg, dirs.Work, func(s, total int, loss, tps float64) {
		bar.Update(s, total, fmt.Sprintf("loss %.3f  %.0f tok/s", loss, tps))
	})
	if err != nil {
		return artifact.Manifest{}, err
	}
	log.Info("done", "step", res.Last.Step, "loss", res.Last.Loss, "val_ppl", res.Last.ValPPL)
	if err := res.WriteCheckpoint(dirs.Out); err != nil {
		return artifact.Manifest{}, err
	}
	return artifact.Manifest{Backend: desc, Inputs: inputs(res), Params: params(res)}, nil
}

// inputs are the digests of what the run read: the data, and the --init
// checkpoint and --valid-data when given.
func inputs(res *train.Result) map[string]string {
	in := map[string]string{"data": res.DataDigest}
	if res.InitDigest != "" {
		in["init"] = res.InitDigest
	}
	if res.ValidDigest != "" {
		in["valid"] = res.ValidDigest
	}
	return in
}

// params are the checkpoint's metadata: its step and, when not the
// reference's defaults, the switches it was trained with (diffusion.Objective,
// read back by eval).
func params(res *train.Result) map[string]any {
	p := artifact.Params(artifact.CheckpointMeta{Step: res.Step})
	if !res.Objective.IsDefault() {
		p[diffusion.ObjectiveParam] = res.Objective
	}
	return p
}

// config is the training run the flags describe. With --init the backbone and
// size flags left at their defaults are cleared, so that the checkpoint's are
// taken (train.Config.Init).
func (o *Options) config() train.Config {
	c := o.flagConfig()
	if o.Init != "" {
		clearDefaultSizes(&c)
	}
	return c
}

// clearDefaultSizes zeroes --backbone, --model, --hidden, --heads, --blocks
// and --cond where they hold their flag defaults.
func clearDefaultSizes(c *train.Config) {
	opts := reflect.TypeOf(Options{})
	isDefault := func(field, value string) bool {
		f, _ := opts.FieldByName(field)
		return f.Tag.Get("default") == value
	}
	if isDefault("Backbone", c.Backbone) {
		c.Backbone = ""
	}
	if isDefault("Model", c.Model) {
		c.Model = ""
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"Hidden", &c.Hidden}, {"Heads", &c.Heads}, {"Blocks", &c.Blocks}, {"Cond", &c.Cond}} {
		if isDefault(f.name, strconv.Itoa(*f.v)) {
			*f.v = 0
		}
	}
}

// flagConfig maps every flag onto the Config field of its name.
func (o *Options) flagConfig() train.Config {
	return train.Config{Data: o.Data,
		Backbone: o.Backbone, Model: o.Model, Hidden: o.Hidden, Heads: o.Heads, Blocks: o.Blocks, Cond: o.Cond, Dropout: o.Dropout,
		Parameterization: o.Parameterization, T: o.T, TimeConditioning: o.TimeConditioning, Noise: o.Noise,
		Steps: o.Steps, Batch: o.Batch, Accum: o.Accum, LR: o.LR, Warmup: o.Warmup, Schedule: o.Schedule,
		Clip: o.Clip, WeightDecay: o.WeightDecay, EMA: o.EMA, Seed: o.Seed,
		LogEvery: o.LogEvery, EvalEvery: o.EvalEvery, EvalBlocks: o.EvalBlocks, CheckpointEvery: o.CheckpointEvery, KeepLast: o.KeepLast,
		Precision:    o.Precision,
		GenPPLScorer: o.GenPPLScorer, GenPPLSamples: o.GenPPLSamples, GenPPLSteps: o.GenPPLSteps,
		Init: o.Init, InitOptimizer: o.InitOptimizer, ValidData: o.ValidData,
		ImportanceSampling: o.ImportanceSampling, ChangeOfVariables: o.ChangeOfVariables, SubsMasking: o.SubsMasking,
		Antithetic: o.Antithetic, SamplingEps: o.SamplingEps, Beta1: o.Beta1, Beta2: o.Beta2, AdamEps: o.AdamEps, LRMin: o.LRMin,
		RandomCrop: o.RandomCrop,
		StopAfter:  o.StopAfter}
}
