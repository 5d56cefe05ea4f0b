package evaluate

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/internal/testsupport"
)

// Evaluating the reference fixture checkpoint on its fixture batch gives the
// fixture's token means (MDLM continuous time, T = 1000, AR).
func TestReferenceEvalLosses(t *testing.T) {
	b, _ := backend.Shared()
	for _, fx := range reffix.All(t) {
		c := fx.Config
		B, L := c.Batch, c.Length
		dcfg, w := testsupport.FixtureDiT(t, fx)
		mdlm := fx.Open(t, "expected_mdlm.safetensors")
		x0, _ := reffix.Int64(t, mdlm, "x0")
		mask := make([]float32, B*L)
		for i := range mask {
			mask[i] = 1
		}
		sched := diffusion.LogLinear{Eps: diffusion.LogLinearEps}
		check := func(name string, m diffusion.Model, tt []float32, xt []int64, want []float32) {
			sigma, dsigma := diffusion.SigmaDSigma(sched, tt)
			s, n, err := NewEvaluator(b, m, w.RotaryInvFreqOrDefault()).Sums(w.Tensors(),
				diffusion.Batch{B: B, L: L, X0: reffix.Int32s(x0), XT: reffix.Int32s(xt), T: tt, Sigma: sigma, DSigma: dsigma, TokenMask: mask})
			if err != nil {
				t.Fatal(err)
			}
			reffix.Compare(t, name, []float32{float32(s / n)}, want, reffix.OutputTol(want), nil)
		}
		m := diffusion.Model{Backbone: dcfg, Param: diffusion.SUBS, Schedule: sched}
		tm, _ := reffix.Float32(t, mdlm, "mdlm/t")
		xt, _ := reffix.Int64(t, mdlm, "mdlm/xt")
		want, _ := reffix.Float32(t, mdlm, "mdlm/token_nll")
		check("eval mdlm/token_nll", m, tm, xt, want)
		losses := fx.Open(t, "expected_losses.safetensors")
		tr, _ := reffix.Float32(t, losses, "subs_T1000/t")
		xt, _ = reffix.Int64(t, losses, "subs_T1000/xt")
		want, _ = reffix.Float32(t, losses, "subs_T1000/token_nll")
		m.T = 1000
		check("eval subs_T1000/token_nll", m, diffusion.Discretize(tr, 1000), xt, want)

		acfg := dcfg
		acfg.Arch = backbone.AR
		aw, err := backbone.LoadWeights(fx.Open(t, "ar.safetensors"), acfg)
		if err != nil {
			t.Fatal(err)
		}
		s, n, err := NewEvaluator(b, diffusion.Model{Backbone: acfg, Param: diffusion.ARP}, aw.RotaryInvFreqOrDefault()).Sums(aw.Tensors(), diffusion.Batch{B: B, L: L, X0: reffix.Int32s(x0), TokenMask: mask})
		if err != nil {
			t.Fatal(err)
		}
		want, _ = reffix.Float32(t, fx.Open(t, "expected_ar.safetensors"), "ar/token_nll")
		reffix.Compare(t, "eval ar/token_nll", []float32{float32(s / n)}, want, reffix.OutputTol(want), nil)
		if n != float64(B*(L-1)) {
			t.Errorf("AR counted %v targets, want %d (position 0 is never a target)", n, B*(L-1))
		}
	}
}

// Perplexity aggregates Σ loss·mask / Σ mask over every batch in float64 and
// exponentiates once: compared with a hand computation from per-batch sums,
// with padded (masked) positions and a short last batch.
func TestPerplexityAggregation(t *testing.T) {
	b, _ := backend.Shared()
	cfg := backbone.Config{Arch: backbone.AR, Vocab: 12, Hidden: 8, Heads: 2, Blocks: 1, Length: 6, MaskIndex: 11}
	w, _ := backbone.NewWeights(cfg, 3)
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32(i%7-3) * 0.2
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
	var blocks [][]int32
	for i := 0; i < 5; i++ {
		blocks = append(blocks, []int32{int32(i % 10), int32((i + 3) % 10), 4}[:1+i%3])
	}
	data := packedSplit(t, blocks, 6, datasets.Specials{BOS: 10, EOS: 10, PAD: 0})
	e := NewEvaluator(b, m, w.RotaryInvFreqOrDefault())
	res, err := e.Perplexity(context.Background(), w.Tensors(), data, 2, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var sum, count float64
	for _, idx := range [][]int{{0, 1}, {2, 3}, {4}} {
		x0, mask := data.Rows(idx)
		s, n, err := e.Sums(w.Tensors(), diffusion.Batch{B: len(idx), L: 6, X0: x0, TokenMask: mask})
		if err != nil {
			t.Fatal(err)
		}
		sum, count = sum+s, count+n
	}
	if math.Abs(res.NLL-sum/count) > 1e-12 || math.Abs(res.PPL-math.Exp(sum/count)) > 1e-9 || res.Tokens != count {
		t.Errorf("perplexity %+v, hand computation nll %v over %v tokens", res, sum/count, count)
	}
	// Padding is not counted: 5 blocks with 3, 4, 5, 3, 4 real tokens minus position 0.
	if count != 2+3+4+2+3 {
		t.Errorf("counted %v tokens, want 14", count)
	}
}

// packedSplit writes blocks, each wrapped in BOS/EOS and padded to L, as a
// packed split and opens it.
func packedSplit(t *testing.T, blocks [][]int32, L int, sp datasets.Specials) *datasets.PackedArrow {
	t.Helper()
	dir := t.TempDir()
	pw, err := datasets.NewPackedWriter(dir, "v", L)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		pw.Write(datasets.PadBlock(b, L, sp))
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := datasets.OpenPackedArrow(filepath.Join(dir, "v.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	return data
}
