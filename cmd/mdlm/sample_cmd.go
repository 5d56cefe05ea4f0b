package main

import (
	"context"
	"log/slog"

	"github.com/mdlm-go/mdlm/accel"
	"github.com/mdlm-go/mdlm/sampler"
	stage "github.com/mdlm-go/mdlm/stages/sample"
)

// SampleCmd is `mdlm sample`.
type SampleCmd struct {
	Checkpoint   string  `required:"" help:"Checkpoint directory (checkpoint/v1)." type:"existingdir"`
	Out          string  `short:"o" required:"" help:"samples/v1 artifact directory to create." type:"path"`
	Sampler      string  `default:"ddpm_rowcache" enum:"ddpm,ddpm_cache,ddpm_rowcache,analytic,ar" help:"ddpm, ddpm_cache (reference cache), ddpm_rowcache (per-row cache, same samples, fewer evaluations), analytic (SEDD), ar."`
	Steps        int     `default:"1000" help:"Reverse diffusion steps."`
	Num          int     `default:"8" help:"Number of samples."`
	Batch        int     `help:"Samples per sampler run (default: all of --num)."`
	Seed         int64   `default:"1" help:"Random seed; the same seed gives the same samples."`
	Eps          float64 `default:"1e-5" help:"End of the time grid linspace(1, eps, steps+1)."`
	NoiseRemoval bool    `default:"true" negatable:"" help:"Final denoising step at t = eps."`
	Length       int     `help:"Sequence length (default: the model length)."`
	Template     string  `help:"Infilling template: comma-separated token ids, _ for positions to sample; the rest of the row is sampled too."`
	StrideLength int     `help:"Semi-autoregressive generation: tokens emitted per window (0: off)."`
	NumStrides   int     `help:"Semi-autoregressive generation: number of extra windows."`
}

// Run samples.
func (c *SampleCmd) Run(ctx context.Context, log *slog.Logger) error {
	b, err := accel.Backend()
	if err != nil {
		return err
	}
	log.Info("sampling", "checkpoint", c.Checkpoint, "sampler", c.Sampler, "steps", c.Steps, "num", c.Num, "backend", accel.Describe(b))
	bar := newProgress("sampling")
	defer bar.done()
	m, err := stage.Run(ctx, b, stage.Options{
		Checkpoint: c.Checkpoint, Out: c.Out, Sampler: sampler.Kind(c.Sampler), Steps: c.Steps, Num: c.Num,
		Batch: c.Batch, Seed: c.Seed, Eps: c.Eps, NoiseRemoval: c.NoiseRemoval, Length: c.Length,
		Template: c.Template, StrideLength: c.StrideLength, NumStrides: c.NumStrides,
		Tool: "mdlm " + toolVersion(), Backend: accel.Describe(b),
	}, bar.update)
	if err != nil {
		return err
	}
	log.Info("wrote samples", "out", c.Out, "digest", m.Digest(), "nfe_total", m.Params["nfe_total"])
	return nil
}
