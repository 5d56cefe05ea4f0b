package eval

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
	"github.com/mdlm-go/mdlm/diffusion"
	stsample "github.com/mdlm-go/mdlm/stages/sample"
	"github.com/mdlm-go/mdlm/tokenizer"
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

// GenPPL scores a samples/v1 artifact with an AR checkpoint: each sample's text is
// re-tokenized with the scorer's tokenizer, truncated to the scorer's length and
// right-padded with EOS; batches of batch samples (the last partial one dropped).
func GenPPL(ctx context.Context, b compute.Backend, samplesDir, scorer string, batch int) (GenResult, error) {
	rows, err := stsample.ReadRows(samplesDir)
	if err != nil {
		return GenResult{}, err
	}
	dir, err := checkpoint.Resolve(scorer)
	if err != nil {
		return GenResult{}, err
	}
	ck, err := checkpoint.Load(dir, true)
	if err != nil {
		return GenResult{}, fmt.Errorf("gen ppl: scorer: %w", err)
	}
	if ck.Config.Model.Arch != backbone.AR {
		return GenResult{}, fmt.Errorf("gen ppl: scorer %s is a %s model, want an AR checkpoint", scorer, ck.Config.Model.Arch)
	}
	if ck.Config.Tokenizer == "" {
		return GenResult{}, fmt.Errorf("gen ppl: scorer %s names no tokenizer (import it with --tokenizer)", scorer)
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
		return res, fmt.Errorf("gen ppl: no samples in %s", samplesDir)
	}
	for _, r := range rows {
		if r.Text == "" && len(r.Tokens) > 0 {
			return res, fmt.Errorf("gen ppl: samples in %s have no text (their checkpoint names no tokenizer)", samplesDir)
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

// GenOptions configure RunGen.
type GenOptions struct {
	Samples, Scorer, Out string
	Batch                int
	Tool, Backend        string
}

// RunGen computes generative perplexity and entropy and publishes metrics/v1.
func RunGen(ctx context.Context, b compute.Backend, opts GenOptions) (GenResult, error) {
	res, err := GenPPL(ctx, b, opts.Samples, opts.Scorer, opts.Batch)
	if err != nil {
		return res, err
	}
	sm, _ := artifact.Read(opts.Samples, stsample.Type)
	man := artifact.Manifest{Type: Type, Stage: "eval gen-ppl", Tool: opts.Tool, Backend: opts.Backend,
		Inputs: map[string]string{"samples": sm.Digest()}, Params: map[string]any{"scorer": opts.Scorer, "batch": opts.Batch}}
	_, err = artifact.Publish(opts.Out, man, func(tmp string) error {
		raw, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "metrics.json"), append(raw, '\n'), 0o644)
	})
	return res, err
}
