// Package genppl is the `mdlm genppl` stage: the generative perplexity of a
// samples/v1 artifact under a causal scorer (spec §7.3; a GPT-2 checkpoint
// imported from the hub, gpt2-large in the paper, or an mdlm AR checkpoint) and
// the samples' mean unigram entropy (§7.4), written as a metrics/v1 artifact.
// A pipeline runs `sample` and then this stage on its output.
//
// The computation is the reference's compute_generative_perplexity: the
// samples' text is re-tokenized with the scorer's tokenizer in one call
// (truncated to the samples' length, right-padded with EOS to the longest row,
// with an attention mask); floor(N/batch) batches are scored, the remainder
// dropped; each batch is cut along the sequence into chunks of the eval
// context (1024), each chunk scored on its own; a target counts when it is
// not EOS or is the chunk's first EOS; gen_ppl = exp(Σ w·nll / Σ w).
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
var Def = stage.Def{Kind: "genppl", Version: 2, Output: train.MetricsType,
	Help:   "Generative perplexity and entropy of samples/v1 under a causal scorer (GPT-2 or AR checkpoint).",
	Inputs: []stage.Input{{Name: "samples", Type: datasets.SamplesType}, {Name: "scorer", Type: checkpoint.Type}},
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
	sm, meta, err := artifact.Open[datasets.SamplesMeta](o.Samples)
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
	sc := Scoring{Batch: o.Batch, MaxLength: o.MaxLength, Context: o.Context}
	if sc.MaxLength <= 0 {
		sc.MaxLength = meta.Length
	}
	res, err := GenPPL(ctx, b, rows, ck, sc)
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
		Params: map[string]any{"batch": sc.Batch, "max_length": sc.MaxLength, "context": sc.Context,
			"scorer_arch": string(ck.Config.Model.Arch), "scorer_tokenizer": ck.Config.Tokenizer}}, nil
}

// Scoring are the reference's gen-PPL settings.
type Scoring struct {
	Batch     int // eval.perplexity_batch_size (8)
	MaxLength int // truncation of the re-tokenized samples (model.length)
	Context   int // eval context (1024)
}

// Retokenized is step 2 of §7.3: every text encoded by the scorer's tokenizer
// (special tokens such as <|endoftext|> recognised), truncated to maxLength,
// right-padded with EOS to the longest row; Valid is the attention mask (the
// reference passes it; with right padding it changes no scored position).
type Retokenized struct {
	IDs   [][]int32
	Valid [][]bool
}

// Retokenize encodes texts in one call, as the reference does.
func Retokenize(tok tokenizer.Tokenizer, eos int, texts []string, maxLength int) Retokenized {
	var r Retokenized
	longest := 0
	for _, t := range texts {
		ids := tok.Encode(t)
		if maxLength > 0 && len(ids) > maxLength {
			ids = ids[:maxLength]
		}
		row := make([]int32, len(ids))
		for i, id := range ids {
			row[i] = int32(id)
		}
		r.IDs = append(r.IDs, row)
		longest = max(longest, len(row))
	}
	for i, row := range r.IDs {
		valid := make([]bool, longest)
		for j := range row {
			valid[j] = true
		}
		for len(row) < longest {
			row = append(row, int32(eos))
		}
		r.IDs[i], r.Valid = row, append(r.Valid, valid)
	}
	return r
}

// scorer evaluates −log p(x_{i+1} | x_≤i) of a chunk with a compiled graph.
type scorer struct {
	ck   *checkpoint.Checkpoint
	exec *Exec
}

func newScorer(b compute.Backend, ck *checkpoint.Checkpoint) (*scorer, error) {
	cfg := ck.Config.Model
	if cfg.Arch != backbone.AR && cfg.Arch != backbone.GPT2 {
		return nil, fmt.Errorf("genppl: scorer %s is a %s model, want gpt2 or ar", ck.Dir, cfg.Arch)
	}
	w := ck.ForInference()
	n := len(cfg.Specs())
	exec, err := NewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(cfg, in[:n])
		// Padding sits at the end of a row, so under the causal mask it never
		// changes a real position; the reference's NLL at padded positions is
		// that of a plain causal pass too (the GPT-2 fixtures check every one).
		m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
		return m.ARPerTokenLoss(p, w.RotaryInvFreqOrDefault(), in[n], nil) // [B, L-1]: −log p(x_{i+1} | x_≤i)
	})
	if err != nil {
		return nil, err
	}
	return &scorer{ck: ck, exec: exec}, nil
}

// chunk returns the NLL [B, C-1] of rows ids (each of length C).
func (s *scorer) chunk(ids [][]int32) ([]float32, error) {
	B, C := len(ids), len(ids[0])
	flat := make([]int32, 0, B*C)
	for i := range ids {
		flat = append(flat, ids[i]...)
	}
	args := []any{}
	for _, p := range s.ck.ForInference().Tensors() {
		args = append(args, p)
	}
	out, err := s.exec.Call(append(args, gtensors.FromFlatDataAndDimensions(flat, B, C))...)
	if err != nil {
		return nil, err
	}
	return backbone.Float32s(out[0])
}

// GenPPL scores samples with a scorer checkpoint (steps 2-6 of §7.3) and
// reports their mean unigram entropy (§7.4).
func GenPPL(ctx context.Context, b compute.Backend, rows []datasets.Sample, ck *checkpoint.Checkpoint, sc Scoring) (GenResult, error) {
	res := GenResult{Samples: len(rows)}
	if len(rows) == 0 {
		return res, fmt.Errorf("genppl: no samples")
	}
	if ck.Config.Tokenizer == "" {
		return res, fmt.Errorf("genppl: scorer %s names no tokenizer (import it with --tokenizer)", ck.Dir)
	}
	tok, err := tokenizer.Load(ck.Config.Tokenizer)
	if err != nil {
		return res, err
	}
	v, err := tokenizer.ForModel(tok) // EOS (and pad) of the scorer's tokenizer: 50256 for GPT-2
	if err != nil {
		return res, err
	}
	eos := v.EOS
	if sc.Context < 2 {
		return res, fmt.Errorf("genppl: --context %d must be at least 2", sc.Context)
	}
	s, err := newScorer(b, ck)
	if err != nil {
		return res, err
	}
	texts := make([]string, len(rows))
	for i, r := range rows {
		if r.Text == "" && len(r.Tokens) > 0 {
			return res, fmt.Errorf("genppl: samples have no text (their checkpoint names no tokenizer)")
		}
		texts[i] = r.Text
		res.Entropy += SampleEntropy(r.Tokens) / float64(len(rows))
	}
	rt := Retokenize(tok, eos, texts, sc.MaxLength)
	batch := min(max(sc.Batch, 1), len(rows))
	var sum float64
	for lo := 0; lo+batch <= len(rows); lo += batch {
		Lp := len(rt.IDs[lo])
		for c := 0; c < Lp; c += sc.Context {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			hi := min(c+sc.Context, Lp)
			if hi-c < 2 {
				continue // nothing to predict
			}
			if p := ck.Config.Model.Positions; p > 0 && hi-c > p {
				return res, fmt.Errorf("genppl: chunks of %d tokens exceed the scorer's %d positions: lower --context or --max-length", hi-c, p)
			}
			var ids [][]int32
			for r := lo; r < lo+batch; r++ {
				ids = append(ids, rt.IDs[r][c:hi])
			}
			nll, err := s.chunk(ids)
			if err != nil {
				return res, err
			}
			for r, row := range ids {
				w := GenPPLWeights(toInts(row), eos)
				for i := 1; i < len(row); i++ {
					sum += w[i] * float64(nll[r*(len(row)-1)+i-1])
					res.Tokens += w[i]
				}
			}
		}
		res.Scored += batch
	}
	if res.Tokens == 0 {
		return res, fmt.Errorf("genppl: no token to score (%d samples, batch %d)", len(rows), batch)
	}
	res.GenPPL = math.Exp(sum / res.Tokens)
	return res, nil
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
