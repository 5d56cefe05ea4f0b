// Package sample is the `mdlm sample` stage: load a checkpoint, run a sampler
// (package sampler), and publish a samples/v1 artifact:
//
//	samples.parquet  one row per sample: index (int64), tokens (list<int32>), nfe (int32),
//	                 text (the tokens decoded by the checkpoint's tokenizer, if it names one)
//	samples.jsonl    the same rows as JSON lines, for a quick look
//	artifact.json    manifest (sampler, steps, seed, checkpoint digest, NFE totals)
//
// The same checkpoint, options and seed give the same samples.
package sample

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Def declares the stage.
var Def = stage.Def{Kind: "sample", Version: 4, Output: datasets.SamplesType,
	Help:   "Generate samples from a checkpoint (ddpm, ddpm_cache, ddpm_rowcache, analytic, ar).",
	Inputs: []stage.Input{{Name: "model", Type: checkpoint.Type}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	Checkpoint   string  `required:"" input:"model" help:"checkpoint/v1 directory, a training work directory (its last checkpoint), or hub:org/name[@revision]." digest:"file"`
	Out          string  `short:"o" required:"" output:"" help:"samples/v1 artifact directory to create." type:"path"`
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
	NoEMA        bool    `help:"Sample with the raw weights instead of the EMA (the reference's eval.disable_ema)."`
}

// checkpointTokenizer loads the tokenizer a checkpoint names (nil if none) and
// checks that its model vocabulary matches the checkpoint's.
func checkpointTokenizer(cfg checkpoint.Config) (*tokenizer.Vocab, error) {
	if cfg.Tokenizer == "" {
		return nil, nil
	}
	tok, err := tokenizer.Load(cfg.Tokenizer)
	if err != nil {
		return nil, err
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return nil, err
	}
	if v.V != cfg.Model.Vocab || v.Mask != cfg.Model.MaskIndex {
		return nil, fmt.Errorf("tokenizer %s gives a model vocabulary of %d with [MASK] %d, the model has %d with mask_index %d",
			cfg.Tokenizer, v.V, v.Mask, cfg.Model.Vocab, cfg.Model.MaskIndex)
	}
	return v, nil
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

// ParseTemplate reads "5,17,_,_,42" into ids with the mask id for "_".
func ParseTemplate(s string, mask, vocab int) ([]int32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int32
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "_" {
			out = append(out, int32(mask))
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 || v >= vocab {
			return nil, fmt.Errorf("template entry %d %q: want a token id in [0, %d) or _", i, f, vocab)
		}
		out = append(out, int32(v))
	}
	return out, nil
}

// Build implements stage.Builder: options are checked before any compute.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	opts := *o
	ck, err := checkpoint.OpenRef(ctx, opts.Checkpoint, env.Logger())
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: --checkpoint: %w", err)
	}
	m, err := ck.Config.Diffusion()
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: checkpoint %s: %w", opts.Checkpoint, err)
	}
	L := opts.Length
	if L == 0 {
		L = m.Backbone.Length
	}
	if L <= 0 {
		return artifact.Manifest{}, fmt.Errorf("sample: the checkpoint records no model length; pass --length")
	}
	so := sampler.Options{Kind: sampler.Kind(opts.Sampler), Steps: opts.Steps, Eps: opts.Eps, NoiseRemoval: opts.NoiseRemoval}
	if err := so.Validate(m, L); err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	tmpl, err := ParseTemplate(opts.Template, m.Backbone.MaskIndex, m.Backbone.Vocab)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: --template: %w", err)
	}
	if len(tmpl) > L {
		return artifact.Manifest{}, fmt.Errorf("sample: --template has %d tokens, longer than the length %d", len(tmpl), L)
	}
	if sampler.Kind(opts.Sampler) == sampler.AR && len(tmpl) == 0 {
		return artifact.Manifest{}, fmt.Errorf("sample: the ar sampler starts from a BOS token: pass it as --template (50256 for GPT-2)")
	}
	if opts.Num < 1 {
		return artifact.Manifest{}, fmt.Errorf("sample: --num must be >= 1, got %d", opts.Num)
	}
	batch := opts.Batch
	if batch <= 0 || batch > opts.Num {
		batch = opts.Num
	}
	vocab, err := checkpointTokenizer(ck.Config)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: checkpoint %s: %w", opts.Checkpoint, err)
	}
	b, desc, err := env.Backend()
	if err != nil {
		return artifact.Manifest{}, err
	}
	env.Logger().Info("sampling", "checkpoint", opts.Checkpoint, "sampler", opts.Sampler, "steps", opts.Steps, "num", opts.Num, "backend", desc)
	bar := env.StartProgress("sampling")
	defer bar.Done()
	progress := func(done, total int) { bar.Update(done, total, "") }
	w, ema := ck.ForInference(), ck.EMA != nil
	if opts.NoEMA {
		w, ema = ck.Weights, false
	}
	s, err := sampler.New(b, m, w, opts.Seed, nil)
	if err != nil {
		return artifact.Manifest{}, err
	}
	rows, err := draw(ctx, s, opts, so, m, tmpl, L, batch, progress)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	if vocab != nil {
		for i := range rows {
			if rows[i].Text, err = vocab.Decode(toInts(rows[i].Tokens)); err != nil {
				return artifact.Manifest{}, fmt.Errorf("sample: decode sample %d: %w", i, err)
			}
		}
	}
	totalNFE := 0
	for _, r := range rows {
		totalNFE += int(r.NFE)
	}
	meta := datasets.SamplesMeta{Sampler: opts.Sampler, Steps: opts.Steps, Num: opts.Num, Batch: batch, Seed: opts.Seed,
		Eps: opts.Eps, NoiseRemoval: opts.NoiseRemoval, Length: L, Template: opts.Template, StrideLength: opts.StrideLength,
		NumStrides: opts.NumStrides, EMA: ema, Tokenizer: ck.Config.Tokenizer, NFETotal: totalNFE}
	if err := datasets.WriteSamples(dirs.Out, rows); err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	env.Logger().Info("samples drawn", "num", len(rows), "nfe_total", totalNFE)
	return artifact.Manifest{Backend: desc, Inputs: map[string]string{"model": ck.Manifest.Digest()}, Params: artifact.Params(meta)}, nil
}

func draw(ctx context.Context, s *sampler.Sampler, opts Options, so sampler.Options, m diffusion.Model, tmpl []int32, L, batch int, progress func(int, int)) ([]datasets.Sample, error) {
	var rows []datasets.Sample
	for start := 0; start < opts.Num; start += batch {
		B := min(batch, opts.Num-start)
		var res *sampler.Result
		var err error
		if opts.StrideLength > 0 {
			res, err = s.SampleSemiAR(ctx, sampler.Kind(opts.Sampler), opts.Steps, B, L, opts.StrideLength, opts.NumStrides, nil)
		} else {
			prior := make([]int32, B*L)
			for b := 0; b < B; b++ {
				for i := 0; i < L; i++ {
					prior[b*L+i] = int32(m.Backbone.MaskIndex)
				}
				copy(prior[b*L:], tmpl)
			}
			res, err = s.Sample(ctx, so, prior, B, L, nil)
		}
		if err != nil {
			return nil, err
		}
		for b := 0; b < B; b++ {
			rows = append(rows, datasets.Sample{Index: int64(start + b), Tokens: res.Tokens[b*res.L : (b+1)*res.L], NFE: int32(res.NFE[b])})
		}
		if progress != nil {
			progress(start+B, opts.Num)
		}
	}
	return rows, nil
}
