package evaluate

import (
	"context"
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Generative perplexity as the reference computes it (diffusion.py:
// Diffusion.compute_generative_perplexity): the samples' text is re-tokenized
// with the scorer's tokenizer in one call (truncated to the samples' length,
// right-padded with EOS to the longest row, with an attention mask);
// floor(N/batch) batches are scored, the remainder dropped; each batch is cut
// along the sequence into chunks of the eval context (1024), each chunk scored
// on its own; a target counts when it is not EOS or is the chunk's first EOS;
// gen_ppl = exp(Σ w·nll / Σ w). Used by the genppl stage and by validation
// during training.

// GenResult is the generative perplexity of samples under an AR scorer
// (compute_generative_perplexity) and their mean unigram entropy
// (SampleEntropy). It is the metrics/v1 metrics.json of `mdlm genppl`.
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

// SampleEntropy is −Σ_v p_v ln p_v with p_v = count_v / len over one sample:
// the reference does not compute it; it is reported next to gen-PPL because
// low-entropy (repetitive) samples can reach a low gen-PPL.
func SampleEntropy(ids []int32) float64 {
	counts := map[int32]float64{}
	for _, id := range ids {
		counts[id]++
	}
	return entropy(counts, float64(len(ids)))
}

// Scoring are the reference's gen-PPL settings.
type Scoring struct {
	Batch     int // eval.perplexity_batch_size (8)
	MaxLength int // truncation of the re-tokenized samples (model.length)
	Context   int // eval context (1024)
}

// Retokenized is the re-tokenization of compute_generative_perplexity: every
// text encoded by the scorer's tokenizer
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

// Scorer is a causal model (GPT-2 or an mdlm AR model) with its tokenizer,
// compiled to give −log p(x_{i+1} | x_≤i) of a chunk.
type Scorer struct {
	cfg     backbone.Config
	weights *backbone.Weights
	tok     tokenizer.Tokenizer
	eos     int
	exec    *Exec
}

// NewScorer compiles a scorer; tokName is the tokenizer the model reads (its
// EOS pads and weighs the rows).
func NewScorer(b compute.Backend, cfg backbone.Config, w *backbone.Weights, tokName string) (*Scorer, error) {
	if cfg.Arch != backbone.AR && cfg.Arch != backbone.GPT2 {
		return nil, fmt.Errorf("genppl: the scorer is a %s model, want gpt2 or ar", cfg.Arch)
	}
	if tokName == "" {
		return nil, fmt.Errorf("genppl: the scorer names no tokenizer (import it with --tokenizer)")
	}
	tok, err := tokenizer.Load(tokName)
	if err != nil {
		return nil, err
	}
	v, err := tokenizer.ForModel(tok) // EOS (and pad) of the scorer's tokenizer: 50256 for GPT-2
	if err != nil {
		return nil, err
	}
	n := len(cfg.Specs())
	exec, err := NewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(cfg, in[:n])
		// Padding sits at the end of a row, so under the causal mask it never
		// changes a real position; the reference's NLL at padded positions is
		// that of a plain causal pass too (the GPT-2 fixtures check every one).
		m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
		return m.ARPerTokenLoss(p, w.RotaryInvFreqOrDefault(), in[n], layers.Inference, nil) // [B, L-1]: −log p(x_{i+1} | x_≤i)
	})
	if err != nil {
		return nil, err
	}
	return &Scorer{cfg: cfg, weights: w, tok: tok, eos: v.EOS, exec: exec}, nil
}

// chunk returns the NLL [B, C-1] of rows ids (each of length C).
func (s *Scorer) chunk(ids [][]int32) ([]float32, error) {
	B, C := len(ids), len(ids[0])
	flat := make([]int32, 0, B*C)
	for i := range ids {
		flat = append(flat, ids[i]...)
	}
	args := []any{}
	for _, p := range s.weights.Tensors() {
		args = append(args, p)
	}
	out, err := s.exec.Call(append(args, tensors.FromFlatDataAndDimensions(flat, B, C))...)
	if err != nil {
		return nil, err
	}
	return backbone.Float32s(out[0])
}

// GenPPL scores samples as compute_generative_perplexity does (re-tokenize,
// batch, chunk, weigh, exp of the weighted mean) and reports their mean
// unigram entropy.
func (s *Scorer) GenPPL(ctx context.Context, rows []datasets.Sample, sc Scoring) (GenResult, error) {
	res := GenResult{Samples: len(rows)}
	if len(rows) == 0 {
		return res, fmt.Errorf("genppl: no samples")
	}
	eos := s.eos
	if sc.Context < 2 {
		return res, fmt.Errorf("genppl: --context %d must be at least 2", sc.Context)
	}
	texts := make([]string, len(rows))
	for i, r := range rows {
		if r.Text == "" && len(r.Tokens) > 0 {
			return res, fmt.Errorf("genppl: samples have no text (their checkpoint names no tokenizer)")
		}
		texts[i] = r.Text
		res.Entropy += SampleEntropy(r.Tokens) / float64(len(rows))
	}
	rt := Retokenize(s.tok, eos, texts, sc.MaxLength)
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
			if p := s.cfg.Positions; p > 0 && hi-c > p {
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
