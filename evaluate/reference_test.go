package evaluate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/safetensors"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Every GPT-2 fixture: the hub directory imports as a scorer checkpoint, the
// texts re-tokenize and pad exactly as the reference's call does, each scored
// row's NLL and weights match, and gen_ppl is the reference's within 1e-5
// relative (with the remainder batch dropped).
func TestGPT2ReferenceGenPPL(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range reffix.Subdirs(t, "MDLM_GPT2_FIXTURES", "gpt2") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var fx struct {
				Texts          []string `json:"texts"`
				MaxLength      int      `json:"max_length"`
				Batch          int      `json:"perplexity_batch_size"`
				Scored         int      `json:"scored_samples"`
				GenPPL         float64  `json:"gen_ppl"`
				WeightedTokens float64  `json:"weighted_tokens"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "genppl.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "scorer")
			if _, err := checkpoint.Import(checkpoint.ImportOptions{Src: dir, Out: out}); err != nil {
				t.Fatal(err)
			}
			ck, err := checkpoint.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if ck.Config.Tokenizer != "gpt2" {
				t.Errorf("imported scorer tokenizer %q, want gpt2", ck.Config.Tokenizer)
			}
			exp, err := safetensors.OpenMmap(filepath.Join(dir, "expected.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer exp.Close()

			tok, _ := tokenizer.Load("gpt2")
			rt := Retokenize(tok, 50256, fx.Texts, fx.MaxLength)
			wantIDs, shape := reffix.Int64(t, exp, "genppl_input_ids")
			wantMask, _ := reffix.Int64(t, exp, "genppl_attention_mask")
			if len(rt.IDs) != shape[0] || len(rt.IDs[0]) != shape[1] {
				t.Fatalf("retokenized %d x %d, want %v", len(rt.IDs), len(rt.IDs[0]), shape)
			}
			for i := range rt.IDs {
				for j := range rt.IDs[i] {
					k := i*shape[1] + j
					if int64(rt.IDs[i][j]) != wantIDs[k] || rt.Valid[i][j] != (wantMask[k] == 1) {
						t.Fatalf("row %d position %d: id %d valid %v, want %d %d", i, j, rt.IDs[i][j], rt.Valid[i][j], wantIDs[k], wantMask[k])
					}
				}
			}

			// Each scored batch's NLL and weights (one chunk: the rows are shorter than 1024).
			s, err := NewScorer(b, ck.Config.Model, ck.ForInference(), ck.Config.Tokenizer)
			if err != nil {
				t.Fatal(err)
			}
			wantNLL, nshape := reffix.Float32(t, exp, "genppl_nll")
			wantW, _ := reffix.Float32(t, exp, "genppl_weights")
			var gotNLL, gotW []float32
			for lo := 0; lo+fx.Batch <= len(fx.Texts); lo += fx.Batch {
				nll, err := s.chunk(rt.IDs[lo : lo+fx.Batch])
				if err != nil {
					t.Fatal(err)
				}
				gotNLL = append(gotNLL, nll...)
				for _, row := range rt.IDs[lo : lo+fx.Batch] {
					ints := make([]int, len(row))
					for i, x := range row {
						ints[i] = int(x)
					}
					w := GenPPLWeights(ints, 50256)
					for _, x := range w[1:] {
						gotW = append(gotW, float32(x))
					}
				}
			}
			if len(gotNLL) != nshape[0]*nshape[1] {
				t.Fatalf("scored %d NLL entries, want %v", len(gotNLL), nshape)
			}
			for i, w := range wantW {
				if gotW[i] != w {
					t.Fatalf("weight %d = %v, want %v", i, gotW[i], w)
				}
			}
			reffix.CompareEach(t, "genppl_nll", gotNLL, wantNLL, func(i int) float64 { return 1e-4 * math.Max(1, math.Abs(float64(wantNLL[i]))) }, nil)

			rows := make([]datasets.Sample, len(fx.Texts))
			for i, txt := range fx.Texts {
				rows[i] = datasets.Sample{Index: int64(i), Text: txt, Tokens: []int32{int32(i)}}
			}
			res, err := s.GenPPL(context.Background(), rows, Scoring{Batch: fx.Batch, MaxLength: fx.MaxLength, Context: 1024})
			if err != nil {
				t.Fatal(err)
			}
			rel := math.Abs(res.GenPPL-fx.GenPPL) / fx.GenPPL
			t.Logf("gen_ppl %.6f, reference %.6f (relative error %.2g); %d scored samples, %v weighted tokens", res.GenPPL, fx.GenPPL, rel, res.Scored, res.Tokens)
			if rel > 1e-5 || res.Scored != fx.Scored || res.Tokens != fx.WeightedTokens {
				t.Errorf("gen_ppl %v (%d samples, %v tokens), want %v (%d, %v)", res.GenPPL, res.Scored, res.Tokens, fx.GenPPL, fx.Scored, fx.WeightedTokens)
			}
		})
	}
}
