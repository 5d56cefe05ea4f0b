package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mdlm-go/mdlm/accel"
	"github.com/mdlm-go/mdlm/stages/eval"
	"github.com/mdlm-go/mdlm/stages/train"
)

// TrainCmd is `mdlm train`.
type TrainCmd struct {
	Data             string  `required:"" help:"packed/v1 artifact (train.arrow, optional valid.arrow)." type:"existingdir"`
	Out              string  `short:"o" required:"" help:"Run directory (checkpoints, metrics.jsonl, loss.png)." type:"path"`
	Model            string  `default:"custom" help:"tiny, small, medium, or custom (sizes below)."`
	Hidden           int     `default:"128" help:"Custom: hidden size D."`
	Heads            int     `default:"4" help:"Custom: attention heads."`
	Blocks           int     `default:"2" help:"Custom: transformer blocks."`
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
	LogEvery         int     `default:"10" help:"Log and record metrics every N steps."`
	EvalEvery        int     `default:"500" help:"Validate (EMA weights) every N steps."`
	EvalBlocks       int     `help:"Validation blocks (0: the whole valid split)."`
	CheckpointEvery  int     `default:"500" help:"Checkpoint every N steps (and at the end)."`
	KeepLast         int     `default:"3" help:"Checkpoints to keep."`
	Resume           bool    `help:"Continue the run in --out from its last checkpoint."`
	Precision        string  `default:"auto" enum:"auto,fp32,bf16" help:"bf16 mixed precision (float32 masters) or fp32; auto: bf16 on XLA/GPU, fp32 on CPU."`
}

// Run trains.
func (c *TrainCmd) Run(ctx context.Context, log *slog.Logger) error {
	b, err := accel.Backend()
	if err != nil {
		return err
	}
	log.Info("training", "backend", accel.Describe(b), "data", c.Data, "out", c.Out)
	bar := newProgress("train")
	defer bar.done()
	m, err := train.Run(ctx, b, train.Options{Data: c.Data, Out: c.Out, Model: c.Model, Hidden: c.Hidden, Heads: c.Heads,
		Blocks: c.Blocks, Cond: c.Cond, Dropout: c.Dropout, Param: c.Parameterization, T: c.T, TimeConditioning: c.TimeConditioning,
		Noise: c.Noise, Steps: c.Steps, Batch: c.Batch, Accum: c.Accum, LR: c.LR, Warmup: c.Warmup, Schedule: c.Schedule, Clip: c.Clip,
		WeightDecay: c.WeightDecay, EMA: c.EMA, Seed: c.Seed, LogEvery: c.LogEvery, EvalEvery: c.EvalEvery,
		EvalBlocks: c.EvalBlocks, CheckpointEvery: c.CheckpointEvery, KeepLast: c.KeepLast, Resume: c.Resume, Precision: c.Precision,
		Tool: "mdlm " + toolVersion(), Backend: accel.Describe(b), Log: log,
		Progress: func(s, total int, loss, tps float64) {
			bar.updateWith(s, total, fmt.Sprintf("loss %.3f  %.0f tok/s", loss, tps))
		}})
	if errors.Is(err, context.Canceled) {
		log.Info("interrupted: checkpoint written; continue with --resume")
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("done", "step", m.Step, "loss", m.Loss, "val_ppl", m.ValPPL)
	return nil
}

// EvalCmd is `mdlm eval`.
type EvalCmd struct {
	Checkpoint string `help:"Checkpoint directory or run directory (its last checkpoint)." type:"existingdir"`
	Data       string `help:"packed/v1 artifact." type:"existingdir"`
	Samples    string `help:"Instead: a samples/v1 artifact, scored for generative perplexity and entropy by --scorer." type:"existingdir"`
	Scorer     string `help:"AR checkpoint (with a tokenizer) that scores --samples." type:"existingdir"`
	Split      string `default:"valid" help:"Split to evaluate."`
	Out        string `short:"o" required:"" help:"metrics/v1 artifact directory to create." type:"path"`
	Batch      int    `default:"16" help:"Sequences per batch (the antithetic stratification runs per batch)."`
	Seed       int64  `default:"1" help:"Seed of the time and mask draws."`
	T          int    `name:"T" default:"-1" help:"Evaluate with this many discrete steps (0: continuous; -1: as trained)."`
	MaxBlocks  int    `help:"Evaluate only the first N blocks."`
	NoEMA      bool   `help:"Use the raw weights instead of the EMA."`
}

// Run evaluates.
func (c *EvalCmd) Run(ctx context.Context, log *slog.Logger) error {
	b, err := accel.Backend()
	if err != nil {
		return err
	}
	if c.Samples != "" {
		if c.Scorer == "" {
			return fmt.Errorf("--samples needs --scorer (an AR checkpoint)")
		}
		g, err := eval.RunGen(ctx, b, eval.GenOptions{Samples: c.Samples, Scorer: c.Scorer, Out: c.Out, Batch: min(c.Batch, 8),
			Tool: "mdlm " + toolVersion(), Backend: accel.Describe(b)})
		if err != nil {
			return err
		}
		fmt.Printf("generative perplexity %.3f over %d samples (%v tokens); mean sample entropy %.3f nats\n", g.GenPPL, g.Scored, g.Tokens, g.Entropy)
		return nil
	}
	if c.Checkpoint == "" || c.Data == "" {
		return fmt.Errorf("eval needs --checkpoint and --data (or --samples and --scorer)")
	}
	res, err := eval.Run(ctx, b, eval.Options{Checkpoint: c.Checkpoint, Data: c.Data, Split: c.Split, Out: c.Out, Batch: c.Batch,
		Seed: c.Seed, T: c.T, MaxBlocks: c.MaxBlocks, NoEMA: c.NoEMA, Tool: "mdlm " + toolVersion(), Backend: accel.Describe(b)})
	if err != nil {
		return err
	}
	log.Info("perplexity", "split", res.Split, "nll", fmt.Sprintf("%.4f", res.NLL), "ppl", fmt.Sprintf("%.3f", res.PPL),
		"unigram_ppl", fmt.Sprintf("%.3f", res.UnigramPPL), "tokens", int64(res.Tokens), "ema", res.EMA)
	fmt.Printf("%s perplexity %.3f (NELBO %.4f nats/token over %d tokens); unigram perplexity %.3f\n",
		res.Split, res.PPL, res.NLL, int64(res.Tokens), res.UnigramPPL)
	return nil
}
