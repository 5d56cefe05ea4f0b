// Package genppl is the `mdlm genppl` stage: the generative perplexity of a
// samples/v1 artifact under a causal scorer (a GPT-2 checkpoint imported from
// the hub, gpt2-large in the paper, or an mdlm AR checkpoint) and the samples'
// mean unigram entropy, written as a metrics/v1 artifact. A pipeline runs
// `sample` and then this stage on its output.
//
// The computation (evaluate.Scorer) is the reference's
// diffusion.py: compute_generative_perplexity.
package genppl

import (
	"context"
	"fmt"
	"math"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/stage"
)

// Def declares the stage.
var Def = stage.Def{Kind: "genppl", Version: 3, Output: artifact.MetricsType,
	Help:   "Generative perplexity and entropy of samples/v1 under a causal scorer (GPT-2 or AR checkpoint).",
	Inputs: []stage.Input{{Name: "samples", Type: artifact.SamplesType}, {Name: "scorer", Type: artifact.CheckpointType}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	Samples   string `arg:"" input:"samples" help:"samples/v1 artifact." type:"existingdir" digest:"file"`
	Scorer    string `required:"" input:"scorer" help:"Scorer: a checkpoint/v1 directory (GPT-2 from mdlm checkpoint import/pull, or an AR model, naming a tokenizer) or hub:org/name[@revision] (e.g. hub:openai-community/gpt2-large)." digest:"file"`
	Out       string `short:"o" required:"" output:"" help:"metrics/v1 artifact directory to create." type:"path"`
	Batch     int    `default:"8" help:"Samples per scoring batch (eval.perplexity_batch_size); the remainder is dropped, as in the reference."`
	MaxLength int    `help:"Truncate re-tokenized samples to this many tokens (default: the samples' length, the reference's model.length)."`
	Context   int    `default:"1024" help:"Eval context: longer rows are scored in chunks of this many tokens."`
}

// Build implements stage.Builder.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	b, desc, err := env.Backend()
	if err != nil {
		return artifact.Manifest{}, err
	}
	sm, meta, err := artifact.Open[artifact.SamplesMeta](o.Samples)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: %w", err)
	}
	rows, err := datasets.ReadSamples(o.Samples)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: %w", err)
	}
	ck, err := checkpoint.OpenRef(ctx, o.Scorer, env.Logger())
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: --scorer: %w", err)
	}
	sc := evaluate.Scoring{Batch: o.Batch, MaxLength: o.MaxLength, Context: o.Context}
	if sc.MaxLength <= 0 {
		sc.MaxLength = meta.Length
	}
	tokName, err := ck.Tokenizer()
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: --scorer: %w", err)
	}
	s, err := evaluate.NewScorer(b, ck.Config.Model, ck.ForInference(), tokName)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("%w (scorer %s)", err, o.Scorer)
	}
	res, err := s.GenPPL(ctx, rows, sc)
	if err != nil {
		return artifact.Manifest{}, err
	}
	if err := checkFinite(res); err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: samples %s, scorer %s: %w", o.Samples, o.Scorer, err)
	}
	env.Logger().Info("generative perplexity", "gen_ppl", fmt.Sprintf("%.3f", res.GenPPL), "scored", res.Scored,
		"tokens", res.Tokens, "entropy", fmt.Sprintf("%.3f", res.Entropy))
	if err := evaluate.WriteMetricsJSON(dirs.Out, res); err != nil {
		return artifact.Manifest{}, err
	}
	return artifact.Manifest{Backend: desc, Inputs: map[string]string{"samples": sm.Digest(), "scorer": ck.Manifest.Digest()},
		Params: map[string]any{"batch": sc.Batch, "max_length": sc.MaxLength, "context": sc.Context,
			"scorer_arch": string(ck.Config.Model.Arch), "scorer_tokenizer": artifact.TokenizerLabel(ck.Config.Tokenizer)}}, nil
}

// checkFinite refuses metrics JSON cannot carry (issue 19, defect 10): a NaN or
// infinite generative perplexity means the scorer's predictions are not finite.
func checkFinite(res evaluate.GenResult) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"gen_ppl", res.GenPPL}, {"scored_tokens", res.Tokens}, {"entropy", res.Entropy}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s is %v over %d scored samples: the scorer's predictions are not finite; nothing published", f.name, f.v, res.Scored)
		}
	}
	return nil
}
