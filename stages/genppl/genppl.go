// Package genppl is the `mdlm genppl` stage: the generative perplexity of a
// samples/v1 artifact under an AR scorer checkpoint (spec §7.3) and the samples'
// mean unigram entropy (§7.4), written as a metrics/v1 artifact. A pipeline runs
// `sample` and then this stage on its output.
package genppl

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
	"github.com/mdlm-go/mdlm/train"
)

// GenResult is the generative perplexity of samples under an AR scorer (spec
// §7.3) and their mean unigram entropy (§7.4).
type GenResult struct {
	GenPPL  float64 `json:"gen_ppl"`
	Scored  int     `json:"scored_samples"` // floor(N/batch)·batch: the remainder is dropped, as in the reference
	Tokens  float64 `json:"scored_tokens"`
	Entropy float64 `json:"entropy"` // mean over samples of −Σ p ln p of the sample's own token ids
	Samples int     `json:"samples"`
}

// GenPPLWeights is the reference's token weighting for a re-tokenized sample x
// (scored targets are positions 1..len−1): every non-EOS token counts, plus the
// first EOS; later EOS tokens (right padding included) do not.
func GenPPLWeights(x []int, eos int) []float64 {
	w := make([]float64, len(x))
	seen := 0
	for i, id := range x {
		if id == eos {
			seen++
		}
		if i > 0 && (id != eos || seen == 1) {
			w[i] = 1
		}
	}
	return w
}

// SampleEntropy is −Σ_v p_v ln p_v with p_v = count_v / len over one sample.
func SampleEntropy(ids []int32) float64 {
	counts := map[int32]float64{}
	for _, id := range ids {
		counts[id]++
	}
	h := 0.0
	for _, c := range counts {
		p := c / float64(len(ids))
		h -= p * math.Log(p)
	}
	return h
}

// Def declares the stage.
var Def = stage.Def{Kind: "genppl", Version: 1, Output: train.MetricsType,
	Help:   "Generative perplexity and entropy of samples/v1 under an AR scorer checkpoint.",
	Inputs: []stage.Input{{Name: "samples", Type: datasets.SamplesType}, {Name: "scorer", Type: checkpoint.Type}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	Samples string `arg:"" input:"samples" help:"samples/v1 artifact." type:"existingdir" digest:"file"`
	Scorer  string `required:"" input:"scorer" help:"AR checkpoint/v1 (naming a tokenizer) that scores the samples." type:"existingdir" digest:"file"`
	Out     string `short:"o" required:"" output:"" help:"metrics/v1 artifact directory to create." type:"path"`
	Batch   int    `default:"8" help:"Samples per scoring batch; the remainder of the last batch is dropped, as in the reference."`
}

// OutDir implements stage.Options.
func (o *Options) OutDir() string { return o.Out }

// Run is the command.
func (o *Options) Run(ctx context.Context, env *stage.Env) error {
	_, _, err := stage.Execute(ctx, env, Def, o)
	return err
}

// Build implements stage.Builder.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	b, desc, err := env.Backend()
	if err != nil {
		return artifact.Manifest{}, err
	}
	sm, _, err := artifact.Open[datasets.SamplesMeta](o.Samples)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: %w", err)
	}
	ck, err := checkpoint.Open(o.Scorer)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("genppl: --scorer: %w", err)
	}
	res, err := GenPPL(ctx, b, o.Samples, ck, o.Batch)
	if err != nil {
		return artifact.Manifest{}, err
	}
	env.Logger().Info("generative perplexity", "gen_ppl", fmt.Sprintf("%.3f", res.GenPPL), "scored", res.Scored,
		"tokens", res.Tokens, "entropy", fmt.Sprintf("%.3f", res.Entropy))
	raw, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return artifact.Manifest{}, err
	}
	if err := os.WriteFile(filepath.Join(dirs.Out, train.MetricsJSON), append(raw, '\n'), 0o644); err != nil {
		return artifact.Manifest{}, err
	}
	return artifact.Manifest{Backend: desc, Inputs: map[string]string{"samples": sm.Digest(), "scorer": ck.Manifest.Digest()},
		Params: map[string]any{"batch": o.Batch, "scorer_tokenizer": ck.Config.Tokenizer}}, nil
}

// GenPPL scores a samples/v1 artifact with an AR checkpoint: each sample's text is
// re-tokenized with the scorer's tokenizer, truncated to the scorer's length and
// right-padded with EOS; batches of batch samples (the last partial one dropped).
func GenPPL(ctx context.Context, b compute.Backend, samplesDir string, ck *checkpoint.Checkpoint, batch int) (GenResult, error) {
	scorer := ck.Dir
	rows, err := datasets.ReadSamples(samplesDir)
	if err != nil {
		return GenResult{}, err
	}
	if ck.Config.Model.Arch != backbone.AR {
		return GenResult{}, fmt.Errorf("genppl: scorer %s is a %s model, want an AR checkpoint", scorer, ck.Config.Model.Arch)
	}
	if ck.Config.Tokenizer == "" {
		return GenResult{}, fmt.Errorf("genppl: scorer %s names no tokenizer (import it with --tokenizer)", scorer)
	}
	tok, err := tokenizer.Load(ck.Config.Tokenizer)
	if err != nil {
		return GenResult{}, err
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return GenResult{}, err
	}
	res := GenResult{Samples: len(rows)}
	for _, r := range rows {
		res.Entropy += SampleEntropy(r.Tokens) / float64(len(rows))
	}
	if batch <= 0 {
		batch = 8
	}
	batch = min(batch, len(rows))
	if batch == 0 {
		return res, fmt.Errorf("genppl: no samples in %s", samplesDir)
	}
	for _, r := range rows {
		if r.Text == "" && len(r.Tokens) > 0 {
			return res, fmt.Errorf("genppl: samples in %s have no text (their checkpoint names no tokenizer)", samplesDir)
		}
	}
	L := ck.Config.Model.Length
	w := ck.ForInference()
	m := diffusion.Model{Backbone: ck.Config.Model, Param: diffusion.ARP}
	n := len(ck.Config.Model.Specs())
	exec := MustNewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(m.Backbone, in[:n])
		return m.ARPerTokenLoss(p, w.RotaryInvFreqOrDefault(), in[n], nil) // [B, L-1], −log p(x_{i+1} | x_≤i)
	})
	var sum float64
	for lo := 0; lo+batch <= len(rows); lo += batch {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		ids := make([]int32, 0, batch*L)
		var weights [][]float64
		for _, r := range rows[lo : lo+batch] {
			x := tok.Encode(r.Text)
			if len(x) > L {
				x = x[:L]
			}
			for len(x) < L {
				x = append(x, v.EOS)
			}
			weights = append(weights, GenPPLWeights(x, v.EOS))
			for _, id := range x {
				ids = append(ids, int32(id))
			}
		}
		args := []any{}
		for _, p := range w.Tensors() {
			args = append(args, p)
		}
		out, err := exec.Call(append(args, gtensors.FromFlatDataAndDimensions(ids, batch, L))...)
		if err != nil {
			return res, err
		}
		nll := gtensors.MustCopyFlatData[float32](out[0])
		for r := 0; r < batch; r++ {
			for i := 1; i < L; i++ {
				sum += weights[r][i] * float64(nll[r*(L-1)+i-1])
				res.Tokens += weights[r][i]
			}
		}
		res.Scored += batch
	}
	res.GenPPL = math.Exp(sum / res.Tokens)
	return res, nil
}
