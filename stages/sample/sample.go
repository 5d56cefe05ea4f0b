// Package sample is the `mdlm sample` stage: load a checkpoint, run a sampler
// (package sampler), and publish a samples/v1 artifact:
//
//	samples.parquet  one row per sample: index (int64), tokens (list<int32>), nfe (int32),
//	                 text (the tokens decoded by the checkpoint's tokenizer, if it names one)
//	samples.jsonl    the same rows as JSON lines, for a quick look
//	artifact.json    manifest (sampler, steps, seed, draw precision, top-p,
//	                 temperature, remasking, prompts, checkpoint digest, NFE totals)
//
// The same checkpoint, options and seed give the same samples. Prompts
// (--prefix, --suffix, --template, --prompts) become each row's canvas: the
// tokens it keeps, [MASK] where the sampler draws.
package sample

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Def declares the stage. Version 5: float64 draws by default, top-p,
// temperature, low-confidence remasking, greedy and ancestral noise removal,
// prompts; --draw-precision float32 replays version 4's samples.
var Def = stage.Def{Kind: "sample", Version: 5, Output: artifact.SamplesType,
	Help:   "Generate samples from a checkpoint (ddpm, ddpm_cache, ddpm_rowcache, analytic, ar).",
	Inputs: []stage.Input{{Name: "model", Type: artifact.CheckpointType}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	Checkpoint    string       `required:"" input:"model" help:"checkpoint/v1 directory, a training work directory (its last checkpoint), or hub:org/name[@revision]." digest:"file"`
	Out           string       `short:"o" required:"" output:"" help:"samples/v1 artifact directory to create." type:"path"`
	Sampler       string       `default:"ddpm_rowcache" enum:"ddpm,ddpm_cache,ddpm_rowcache,analytic,ar" help:"ddpm, ddpm_cache (reference cache), ddpm_rowcache (per-row cache, same samples, fewer evaluations), analytic (SEDD), ar."`
	Steps         int          `default:"1000" help:"Reverse diffusion steps."`
	Num           int          `default:"8" help:"Number of samples."`
	Batch         int          `help:"Samples per sampler run (default: all of --num)."`
	Seed          int64        `default:"1" help:"Random seed; the same seed gives the same samples."`
	Eps           float64      `default:"1e-5" help:"End of the time grid linspace(1, eps, steps+1)."`
	NoiseRemoval  NoiseRemoval `default:"true" negatable:"" help:"Final denoising step at t = eps: the reference's (argmax for the ddpm family, the SEDD denoiser for analytic); --noise-removal=greedy: argmax for every sampler; --noise-removal=ancestral: the remaining masks drawn like any step."`
	DrawPrecision string       `default:"float64" enum:"float64,float32" help:"Precision of the categorical draws: float64, or float32 as the reference (replays samples of earlier versions; float32 draws cut the distribution's tail, lowering gen-PPL and entropy)."`
	TopP          float64      `default:"1" help:"Nucleus sampling: draw from the smallest set of most probable tokens whose probability reaches P (1: off; ddpm family and ar)."`
	Temperature   float64      `default:"1" help:"Divide the logits by this before the softmax (1: off; ddpm family and ar)."`
	Remasking     string       `default:"random" enum:"random,low-confidence" help:"Which masked positions a step unmasks: random (the reference's), or low-confidence (as many as random would, those whose drawn token is most probable; ddpm family, SUBS models)."`
	Length        int          `help:"Sequence length (default: the model length)."`
	Template      string       `help:"Infilling template: comma-separated token ids, _ for positions to sample; the rest of the row is sampled too."`
	Prefix        string       `help:"Text every sample begins with, tokenized with the checkpoint's tokenizer and kept fixed."`
	Suffix        string       `help:"Text every sample ends with, tokenized with the checkpoint's tokenizer and kept fixed."`
	Prompts       string       `help:"JSON lines file, one prompt a line: {\"prefix\": ..., \"suffix\": ...} or {\"template\": \"ids,_,...\"}; --num samples for each." type:"path" digest:"file"`
	StrideLength  int          `help:"Semi-autoregressive generation: tokens emitted per window (0: off)."`
	NumStrides    int          `help:"Semi-autoregressive generation: number of extra windows."`
	NoEMA         bool         `help:"Sample with the raw weights instead of the EMA (the reference's eval.disable_ema)."`
}

// params are the manifest's: the samples/v1 metadata and this stage's
// sampling options (the rows' prompts by the file's digest).
type params struct {
	artifact.SamplesMeta
	NoiseRemovalMode string  `json:"noise_removal_mode"`
	DrawPrecision    string  `json:"draw_precision"`
	TopP             float64 `json:"top_p"`
	Temperature      float64 `json:"temperature"`
	Remasking        string  `json:"remasking"`
	Prefix           string  `json:"prefix,omitempty"`
	Suffix           string  `json:"suffix,omitempty"`
	PromptsSHA256    string  `json:"prompts_sha256,omitempty"`
	NumPrompts       int     `json:"num_prompts,omitempty"`
}

// checkpointTokenizer loads the tokenizer a checkpoint names (nil if none):
// a built-in one or the checkpoint's own tokenizer.json; it checks that its
// model vocabulary matches the checkpoint's.
func checkpointTokenizer(ck *checkpoint.Checkpoint) (*tokenizer.Vocab, error) {
	cfg := ck.Config
	if cfg.Tokenizer == "" {
		return nil, nil
	}
	name, err := ck.Tokenizer()
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(name)
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
	// The model as trained: config.json's (or the manifest's) switches, d3pm's
	// subs masking among them.
	m, err := ck.Model()
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
	so, err := opts.samplerOptions()
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	if err := so.Validate(m, L); err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	if opts.Num < 1 {
		return artifact.Manifest{}, fmt.Errorf("sample: --num must be >= 1, got %d", opts.Num)
	}
	vocab, err := checkpointTokenizer(ck)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: checkpoint %s: %w", opts.Checkpoint, err)
	}
	prompts, promptsSum, err := opts.prompts()
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	canvases, err := opts.canvases(prompts, vocab, m, L)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	total := len(canvases) * opts.Num
	batch := opts.Batch
	if batch <= 0 {
		batch = opts.Num
	}
	batch = min(batch, total)
	b, desc, err := env.Backend()
	if err != nil {
		return artifact.Manifest{}, err
	}
	env.Logger().Info("sampling", "checkpoint", opts.Checkpoint, "sampler", opts.Sampler, "steps", opts.Steps, "num", total,
		"draws", so.Draws, "top_p", opts.TopP, "temperature", opts.Temperature, "remasking", opts.Remasking, "backend", desc)
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
	rows, err := draw(ctx, s, opts, so, canvases, L, batch, progress)
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
	meta := artifact.SamplesMeta{Sampler: opts.Sampler, Steps: opts.Steps, Num: total, Batch: batch, Seed: opts.Seed,
		Eps: opts.Eps, NoiseRemoval: so.NoiseRemoval, Length: L, Template: opts.Template, StrideLength: opts.StrideLength,
		NumStrides: opts.NumStrides, EMA: ema, Tokenizer: artifact.TokenizerLabel(ck.Config.Tokenizer), NFETotal: totalNFE}
	pm := params{SamplesMeta: meta, NoiseRemovalMode: string(opts.NoiseRemoval), DrawPrecision: string(so.Draws),
		TopP: opts.TopP, Temperature: opts.Temperature, Remasking: opts.Remasking, Prefix: opts.Prefix, Suffix: opts.Suffix,
		PromptsSHA256: promptsSum}
	if opts.Prompts != "" {
		pm.NumPrompts = len(prompts)
	}
	if err := datasets.WriteSamples(dirs.Out, rows); err != nil {
		return artifact.Manifest{}, fmt.Errorf("sample: %w", err)
	}
	env.Logger().Info("samples drawn", "num", len(rows), "nfe_total", totalNFE)
	return artifact.Manifest{Backend: desc, Inputs: map[string]string{"model": ck.Manifest.Digest()}, Params: artifact.Params(pm)}, nil
}

// samplerOptions turns the flags into the sampler's options, refusing values
// out of range.
func (o *Options) samplerOptions() (sampler.Options, error) {
	on, final, err := o.NoiseRemoval.samplerFinal()
	if err != nil {
		return sampler.Options{}, err
	}
	if !(o.TopP > 0 && o.TopP <= 1) {
		return sampler.Options{}, fmt.Errorf("--top-p %g: want a probability in (0, 1] (1: off)", o.TopP)
	}
	if !(o.Temperature > 0) || math.IsInf(o.Temperature, 0) {
		return sampler.Options{}, fmt.Errorf("--temperature %g: want a finite value > 0 (1: off)", o.Temperature)
	}
	prec := sampler.Precision(o.DrawPrecision)
	if prec != sampler.Float32 && prec != sampler.Float64 {
		return sampler.Options{}, fmt.Errorf("--draw-precision %q: want float64 or float32", o.DrawPrecision)
	}
	remask := sampler.Remasking(o.Remasking)
	if remask == "" {
		remask = sampler.RandomRemasking
	}
	return sampler.Options{Kind: sampler.Kind(o.Sampler), Steps: o.Steps, Eps: o.Eps, NoiseRemoval: on, Final: final,
		Draws: prec, Temperature: o.Temperature, TopP: o.TopP, Remasking: remask}, nil
}

// draw samples len(canvases)·Num rows in batches: row i keeps the tokens of
// canvas i / Num (its prompt) and samples the rest.
func draw(ctx context.Context, s *sampler.Sampler, opts Options, so sampler.Options, canvases [][]int32, L, batch int, progress func(int, int)) ([]datasets.Sample, error) {
	var rows []datasets.Sample
	total := len(canvases) * opts.Num
	for start := 0; start < total; start += batch {
		B := min(batch, total-start)
		var x []int32
		for b := 0; b < B; b++ {
			x = append(x, canvases[(start+b)/opts.Num]...)
		}
		var res *sampler.Result
		var err error
		if opts.StrideLength > 0 {
			res, err = s.SampleSemiAR(ctx, so, x, B, L, opts.StrideLength, opts.NumStrides, nil)
		} else {
			res, err = s.Sample(ctx, so, x, B, L, nil)
		}
		if err != nil {
			return nil, err
		}
		for b := 0; b < B; b++ {
			rows = append(rows, datasets.Sample{Index: int64(start + b), Tokens: res.Tokens[b*res.L : (b+1)*res.L], NFE: int32(res.NFE[b])})
		}
		if progress != nil {
			progress(start+B, total)
		}
	}
	return rows, nil
}
