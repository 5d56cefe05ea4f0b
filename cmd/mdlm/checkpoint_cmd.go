package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/hub"
)

// CheckpointCmd groups the checkpoint subcommands.
type CheckpointCmd struct {
	Inspect CheckpointInspectCmd `cmd:"" help:"Describe a safetensors state dict or a checkpoint directory (verifying its checksums)."`
	Import  CheckpointImportCmd  `cmd:"" help:"Convert a reference .ckpt, a PyTorch state dict (.safetensors) or a hub GPT-2 folder into a checkpoint directory."`
	Export  CheckpointExportCmd  `cmd:"" help:"Write a checkpoint's weights as a PyTorch state dict (.safetensors)."`
	Pull    CheckpointPullCmd    `cmd:"" help:"Download a model repository from the Hugging Face hub and import it (e.g. kuleshov-group/mdlm-owt, openai-community/gpt2-large)."`
	Push    CheckpointPushCmd    `cmd:"" help:"Upload a checkpoint directory to a model repository of the Hugging Face hub (created if missing); hub:org/name@rev pulls it back."`
}

// CheckpointPullCmd is `mdlm checkpoint pull`.
type CheckpointPullCmd struct {
	Repo      string `arg:"" help:"Model repository, org/name."`
	Out       string `short:"o" required:"" help:"Checkpoint directory to create, or s3://bucket/prefix to publish it to." type:"path"`
	Revision  string `default:"main" help:"Branch, tag or commit (pin a commit for a reproducible pipeline)."`
	Tokenizer string `help:"Tokenizer to record: a built-in name or a tokenizer.json path, copied into the checkpoint (default: gpt2 for GPT-2 vocabularies, else the repository's tokenizer.json when it fits)."`
	NoEMA     bool   `name:"no-ema" help:"A .ckpt repository: the raw state_dict instead of the EMA weights."`
	Workers   int    `default:"4" help:"Parallel transfers."`
	CacheDir  string `help:"Where raw hub files go (default $MDLM_CACHE or ~/.cache/mdlm/hub)." env:"MDLM_CACHE" type:"path"`
}

// Run pulls.
func (c *CheckpointPullCmd) Run(ctx context.Context, log *slog.Logger) error {
	bar := newProgress("pull")
	defer bar.Done()
	var got int64
	m, err := withArtifactOut(ctx, log, c.Out, func(out string) (artifact.Manifest, error) {
		return checkpoint.Pull(ctx, checkpoint.PullOptions{Repo: c.Repo, Revision: c.Revision, Out: out, Cache: c.CacheDir,
			Tokenizer: c.Tokenizer, NoEMA: c.NoEMA, Workers: c.Workers, Tool: "mdlm " + toolVersion(), Log: log,
			Progress: func(n int64) { got += n; bar.Bytes(got) }})
	})
	if err != nil {
		return err
	}
	log.Info("pulled checkpoint", "repo", c.Repo, "revision", c.Revision, "out", c.Out, "digest", m.Digest())
	return nil
}

// CheckpointPushCmd is `mdlm checkpoint push` (issue 25).
type CheckpointPushCmd struct {
	Src      string `arg:"" name:"ckpt" help:"Checkpoint directory, or s3://bucket/prefix." type:"existingdir"`
	Repo     string `arg:"" help:"Model repository, org/name (created if missing)."`
	Revision string `default:"main" help:"Branch to commit to (created from main if missing)."`
	Private  bool   `help:"Create the repository private."`
	Message  string `help:"Commit summary."`
}

// Run verifies the checkpoint and pushes its files and manifest ($HF_TOKEN,
// $HF_ENDPOINT as for pull; the token is never logged).
func (c *CheckpointPushCmd) Run(ctx context.Context, log *slog.Logger) error {
	src, err := localArtifact(ctx, log, c.Src)
	if err != nil {
		return fmt.Errorf("checkpoint push: %w", err)
	}
	c.Src = src
	m, err := artifact.Read(c.Src, artifact.CheckpointType)
	if err != nil {
		return fmt.Errorf("checkpoint push: %w", err)
	}
	if err := artifact.Verify(c.Src, m); err != nil {
		return fmt.Errorf("checkpoint push: %w", err)
	}
	files := []string{artifact.ManifestName}
	for _, f := range m.Files {
		files = append(files, f.Path)
	}
	cl := hub.NewClient()
	cl.Log = log
	commit, err := cl.Push(ctx, hub.PushOptions{Repo: c.Repo, Revision: c.Revision, Dir: c.Src, Files: files, Private: c.Private, Message: c.Message})
	if err != nil {
		return fmt.Errorf("checkpoint push %s to %s: %w", c.Src, c.Repo, err)
	}
	log.Info("pushed checkpoint", "src", c.Src, "repo", c.Repo, "revision", c.Revision, "commit", commit, "digest", m.Digest())
	return nil
}

// CheckpointInspectCmd is `mdlm checkpoint inspect`.
type CheckpointInspectCmd struct {
	Path string `arg:"" help:"A .safetensors file or a checkpoint directory." type:"existingfile|existingdir"`
	JSON bool   `help:"Print the report as JSON."`
	All  bool   `help:"List every tensor (default: the first 12)."`
}

// Run prints the report.
func (c *CheckpointInspectCmd) Run(kctx *kong.Context) error {
	r, err := checkpoint.Inspect(c.Path)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(kctx.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := tabwriter.NewWriter(kctx.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "path\t%s\nkind\t%s\n", r.Path, r.Kind)
	cfg := r.Config
	fmt.Fprintf(w, "arch\t%s\nvocab_size\t%d\nhidden_size\t%d\n", cfg.Arch, cfg.Vocab, cfg.Hidden)
	if cfg.Arch == backbone.DiMamba {
		fmt.Fprintf(w, "d_state\t%d\nd_conv\t%d\nexpand\t%d\ndt_rank\t%d\n", cfg.DState, cfg.DConv, cfg.Expand, cfg.DtRank)
	} else {
		fmt.Fprintf(w, "n_heads\t%d\n", cfg.Heads)
	}
	fmt.Fprintf(w, "n_blocks\t%d\ncond_dim\t%d\nlength\t%d\nmask_index\t%d\n", cfg.Blocks, cfg.Cond, cfg.Length, cfg.MaskIndex)
	if r.Method != nil {
		fmt.Fprintf(w, "parameterization\t%s\nT\t%d\ntime_conditioning\t%v\nnoise\t%s\n",
			r.Method.Parameterization, r.Method.T, r.Method.TimeConditioning, r.Method.Noise)
	}
	fmt.Fprintf(w, "parameters\t%d\ntensors\t%d\n", r.NumParams, len(r.Tensors))
	if r.Digest != "" {
		fmt.Fprintf(w, "digest\t%s\nchecksums\tverified\n", r.Digest)
	}
	w.Flush()
	w = tabwriter.NewWriter(kctx.Stdout, 0, 4, 2, ' ', 0)
	for i, t := range r.Tensors {
		if i == 12 && !c.All {
			fmt.Fprintf(w, "  ... %d more (--all)\n", len(r.Tensors)-12)
			break
		}
		fmt.Fprintf(w, "  %s\t%s\t%v\n", t.Name, t.DType, t.Shape)
	}
	return w.Flush()
}

// CheckpointImportCmd is `mdlm checkpoint import`.
type CheckpointImportCmd struct {
	Src              string `arg:"" help:"A reference Lightning checkpoint (.ckpt), a PyTorch state dict (.safetensors, bare or 'backbone.'-prefixed names, or a folder with model.safetensors), or a Hugging Face GPT-2 repository folder (a gen-PPL scorer)." type:"path"`
	Out              string `short:"o" required:"" help:"Checkpoint directory to create, or s3://bucket/prefix to publish it to." type:"path"`
	ConfigJSON       string `name:"config-json" help:"config.json with the sizes (Hugging Face MDLMConfig or fixture keys); default: the one beside SRC, if any." type:"existingfile"`
	Heads            int    `help:"Number of attention heads, when neither the tensors nor a config.json say."`
	Length           int    `help:"Model sequence length to record."`
	Parameterization string `help:"Diffusion parameterization the weights were trained with." enum:",subs,d3pm,sedd,ar" default:""`
	T                int    `name:"T" help:"Time discretisation the model was trained with (0: continuous)."`
	TimeConditioning bool   `help:"The backbone was trained with sigma conditioning (SEDD, D3PM)."`
	Noise            string `help:"Noise schedule." default:"loglinear" enum:"loglinear,cosine,cosinesqr,linear,geometric"`
	Tokenizer        string `help:"Tokenizer to record: gpt2, bert-base-uncased, text8, bytes or a tokenizer.json path, copied into the checkpoint (its model vocabulary must match)."`
	NoEMA            bool   `name:"no-ema" help:"Lightning .ckpt: take the raw state_dict instead of the EMA weights the reference evaluates with."`
}

// Run imports.
func (c *CheckpointImportCmd) Run(ctx context.Context, log *slog.Logger) error {
	opts := checkpoint.ImportOptions{Src: c.Src, ConfigJSON: c.ConfigJSON, Heads: c.Heads, Length: c.Length,
		Tokenizer: c.Tokenizer, NoEMA: c.NoEMA, Tool: "mdlm " + toolVersion()}
	if c.Parameterization != "" {
		opts.Method = checkpoint.Method{Parameterization: c.Parameterization, T: c.T, TimeConditioning: c.TimeConditioning, Noise: c.Noise}
	}
	m, err := withArtifactOut(ctx, log, c.Out, func(out string) (artifact.Manifest, error) {
		opts.Out = out
		return checkpoint.Import(opts)
	})
	if err != nil {
		return err
	}
	log.Info("imported checkpoint", "src", c.Src, "out", c.Out, "digest", m.Digest())
	return nil
}

// CheckpointExportCmd is `mdlm checkpoint export`.
type CheckpointExportCmd struct {
	Src    string `arg:"" help:"Checkpoint directory, or s3://bucket/prefix." type:"existingdir"`
	Out    string `short:"o" required:"" help:"The .safetensors file to write, or s3://bucket/key.safetensors to upload it to." type:"path"`
	Prefix string `help:"Prefix for every tensor name; 'backbone.' gives the Lightning / Hugging Face layout." default:""`
}

// Run exports.
func (c *CheckpointExportCmd) Run(ctx context.Context, log *slog.Logger) error {
	src, err := localArtifact(ctx, log, c.Src)
	if err != nil {
		return fmt.Errorf("checkpoint export: %w", err)
	}
	err = withFileOut(ctx, log, c.Out, func(dst string) error {
		return checkpoint.Export(checkpoint.ExportOptions{Src: src, Dst: dst, Prefix: c.Prefix})
	})
	if err != nil {
		return err
	}
	log.Info("exported checkpoint", "src", c.Src, "out", c.Out)
	return nil
}
