// Package eval is the `mdlm eval` stage: the perplexity of a checkpoint on a
// packed/v1 split as the reference's mode=ppl_eval computes it (diffusion.py:
// _compute_loss and its NLL/Perplexity metrics): the per-token NELBO
// (diffusion, one t per sequence, antithetic across the batch) or the AR
// negative log-likelihood, summed in float64 over every counted token, and exp
// of the mean at the end (evaluate.Evaluator). Writes a metrics/v1 artifact
// (metrics.json).
package eval

import (
	"context"
	"fmt"
	"math"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/stage"
)

// Def declares the stage.
var Def = stage.Def{Kind: "eval", Version: 3, Output: artifact.MetricsType,
	Help:   "Perplexity (NELBO bound for diffusion) of a checkpoint on packed/v1 data.",
	Inputs: []stage.Input{{Name: "model", Type: artifact.CheckpointType}, {Name: "data", Type: artifact.PackedType}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	Checkpoint string `required:"" input:"model" help:"checkpoint/v1 directory, a training work directory (its last checkpoint), or hub:org/name[@revision]." digest:"file"`
	Data       string `required:"" input:"data" help:"packed/v1 artifact." type:"existingdir" digest:"file"`
	Out        string `short:"o" required:"" output:"" help:"metrics/v1 artifact directory to create." type:"path"`
	Split      string `default:"valid" help:"Split to evaluate."`
	Batch      int    `default:"16" help:"Sequences per batch (the antithetic stratification runs per batch)."`
	Seed       int64  `default:"1" help:"Seed of the time and mask draws."`
	T          int    `name:"T" default:"-1" help:"Evaluate with this many discrete steps (0: continuous; -1: as trained)."`
	MaxBlocks  int    `help:"Evaluate only the first N blocks."`
	NoEMA      bool   `help:"Use the raw weights instead of the EMA."`
	MCDraws    int    `name:"mc-draws" default:"1" help:"Average the NELBO over K draws of t per sequence (antithetic within its draws) and report the standard error (nll_stderr); 1: the reference's single draw."`
}

// MaxMCDraws bounds --mc-draws (each draw is one more pass over the data).
const MaxMCDraws = 1024

// Build implements stage.Builder.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	res, man, err := o.evaluate(ctx, env)
	if err != nil {
		return man, err
	}
	env.Logger().Info("perplexity", "split", res.Split, "ppl", fmt.Sprintf("%.3f", res.PPL), "nll", fmt.Sprintf("%.4f", res.NLL),
		"tokens", int64(res.Tokens), "unigram_ppl", fmt.Sprintf("%.3f", res.UnigramPPL), "ema", res.EMA)
	return man, evaluate.WriteMetricsJSON(dirs.Out, res)
}

func (o *Options) evaluate(ctx context.Context, env *stage.Env) (evaluate.Perplexity, artifact.Manifest, error) {
	var man artifact.Manifest
	b, desc, err := env.Backend()
	if err != nil {
		return evaluate.Perplexity{}, man, err
	}
	ck, err := checkpoint.OpenRef(ctx, o.Checkpoint, env.Logger())
	if err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: --checkpoint: %w", err)
	}
	m, err := ck.Config.Diffusion()
	if err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: checkpoint %s: %w", o.Checkpoint, err)
	}
	if o.T >= 0 {
		m.T = o.T
	}
	obj, err := ck.Objective()
	if err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: checkpoint %s: %w", o.Checkpoint, err)
	}
	m = m.WithObjective(obj)
	if err := m.Validate(); err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: checkpoint %s: trained objective %+v: %w", o.Checkpoint, obj, err)
	}
	if o.MCDraws < 0 || o.MCDraws > MaxMCDraws {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: --mc-draws %d: want 1 to %d", o.MCDraws, MaxMCDraws)
	}
	if o.MCDraws > 1 && m.Param == diffusion.ARP {
		env.Logger().Warn("--mc-draws: an AR model's likelihood draws nothing; evaluating once", "mc_draws", o.MCDraws)
	}
	pm, meta, err := artifact.Open[artifact.PackedMeta](o.Data)
	if err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: --data: %w", err)
	}
	if meta.VocabSize != m.Backbone.Vocab {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: data %s has vocabulary %d, the checkpoint %d", o.Data, meta.VocabSize, m.Backbone.Vocab)
	}
	data, err := datasets.OpenPackedSplit(o.Data, o.Split, meta)
	if err != nil {
		return evaluate.Perplexity{}, man, fmt.Errorf("eval: --split %s: %w", o.Split, err)
	}
	defer data.Close()
	w := ck.ForInference()
	if o.NoEMA {
		w = ck.Weights
	}
	batch := o.Batch
	if batch <= 0 {
		batch = 16
	}
	ev := evaluate.NewEvaluator(b, m, w.RotaryInvFreqOrDefault())
	ev.MCDraws = o.MCDraws
	if obj.RandomCrop {
		ev.Crop = &diffusion.Crop{L: m.Backbone.Length, BOS: int32(meta.BOS), EOS: int32(meta.EOS)}
	}
	res, err := ev.Perplexity(ctx, w.Tensors(), data, batch, o.Seed, o.MaxBlocks)
	if err != nil {
		return res, man, fmt.Errorf("eval: %w", err)
	}
	res.Split, res.EMA = o.Split, ck.EMA != nil && !o.NoEMA
	if err := checkFinite(res); err != nil {
		return res, man, fmt.Errorf("eval: %s split %s: %w", o.Data, o.Split, err)
	}
	man = artifact.Manifest{Backend: desc, Inputs: map[string]string{"model": ck.Manifest.Digest(), "data": pm.Digest()},
		Params: map[string]any{"split": o.Split, "batch": batch, "seed": o.Seed, "T": m.T, "max_blocks": o.MaxBlocks, "ema": res.EMA}}
	if res.MCDraws > 1 {
		man.Params["mc_draws"] = res.MCDraws
	}
	return res, man, nil
}

// checkFinite refuses a result JSON cannot carry (issue 19, defect 10): on data
// whose ids are checked, an infinite or NaN perplexity means a diverged model or
// a bug, never a number to publish.
func checkFinite(res evaluate.Perplexity) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"nll", res.NLL}, {"bpd", res.BPD}, {"ppl", res.PPL}, {"tokens", res.Tokens}, {"unigram_ppl", res.UnigramPPL},
		{"nll_stderr", deref(res.NLLStderr)}, {"bpd_stderr", deref(res.BPDStderr)}, {"ppl_stderr", deref(res.PPLStderr)}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s is %v over %.0f tokens (nll %v): the checkpoint's predictions are not finite on this data; nothing published",
				f.name, f.v, res.Tokens, res.NLL)
		}
	}
	return nil
}

// deref is *p, 0 for nil.
func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
