package evaluate

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

// fixedModel is a DiT with fixed random weights (its zero-initialised output
// layer filled) over stagetest's byte vocabulary, and the valid split.
func fixedModel(t *testing.T) (diffusion.Model, *backbone.Weights, *datasets.PackedArrow) {
	t.Helper()
	dir := stagetest.PackedArtifact(t)
	_, meta, err := artifact.Open[artifact.PackedMeta](dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := datasets.OpenPackedSplit(dir, "valid", meta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: meta.VocabSize, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: data.L, MaskIndex: meta.MaskIndex}
	w, err := backbone.NewWeights(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for name, v := range w.Data {
		if strings.HasPrefix(name, "output_layer.linear") || strings.Contains(name, "adaLN") {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.5)
			}
		}
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
	return m.WithObjective(diffusion.DefaultObjective()), w, data
}

func perplexity(t *testing.T, m diffusion.Model, w *backbone.Weights, data *datasets.PackedArrow, K int, seed int64) Perplexity {
	t.Helper()
	b, _ := backend.Shared()
	e := NewEvaluator(b, m, w.RotaryInvFreqOrDefault())
	e.MCDraws = K
	res, err := e.Perplexity(context.Background(), w.Tensors(), data, 8, seed, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// On a fixed checkpoint the Monte Carlo standard error shrinks as the draws
// per sequence grow, the estimates agree within it, and one draw is the
// reference's estimate, reported without one.
func TestMCDrawsStandardErrorShrinks(t *testing.T) {
	m, w, data := fixedModel(t)
	one, single := perplexity(t, m, w, data, 1, 1), perplexity(t, m, w, data, 0, 1)
	if one.NLL != single.NLL || one.NLLStderr != nil || one.MCDraws != 0 {
		t.Errorf("--mc-draws 1 = %+v, want the single-draw %+v without a standard error", one, single)
	}
	ref := perplexity(t, m, w, data, 32, 1)
	prev := math.Inf(1)
	for _, K := range []int{2, 4, 8, 16, 32} {
		res := perplexity(t, m, w, data, K, 1)
		if res.NLLStderr == nil || res.MCDraws != K {
			t.Fatalf("K=%d: no standard error in %+v", K, res)
		}
		se := *res.NLLStderr
		t.Logf("K=%2d  nll %.4f ± %.4f", K, res.NLL, se)
		if !(se < prev) || se <= 0 {
			t.Errorf("K=%d: standard error %v, not below K/2's %v", K, se, prev)
		}
		if math.Abs(res.NLL-ref.NLL) > 4*se {
			t.Errorf("K=%d: nll %v, K=32's %v: further than 4 standard errors (%v)", K, res.NLL, ref.NLL, se)
		}
		if math.Abs(*res.PPLStderr-res.PPL*se) > 1e-12 || math.Abs(*res.BPDStderr-se/math.Ln2) > 1e-12 {
			t.Errorf("K=%d: ppl/bpd standard errors %v %v from nll's %v", K, *res.PPLStderr, *res.BPDStderr, se)
		}
		prev = se
	}
	if rel := (prev * math.Sqrt(32)) / (*perplexity(t, m, w, data, 2, 1).NLLStderr * math.Sqrt(2)); rel < 0.3 || rel > 3 {
		t.Errorf("standard error does not fall like 1/sqrt(K): se(32)·sqrt(32) / se(2)·sqrt(2) = %v", rel)
	}
}

// The standard error is an honest (conservative) measure of the spread of the
// estimate over seeds: at K = 4, the standard deviation of nll over 24 seeds
// is at most about the reported standard error.
func TestMCDrawsStandardErrorMatchesSpread(t *testing.T) {
	m, w, data := fixedModel(t)
	const K, seeds = 4, 24
	var xs []float64
	var seSum float64
	for s := int64(1); s <= seeds; s++ {
		res := perplexity(t, m, w, data, K, s)
		xs = append(xs, res.NLL)
		seSum += *res.NLLStderr
	}
	_, v := meanVar(xs)
	sd, se := math.Sqrt(v), seSum/seeds
	t.Logf("K=%d: sd over %d seeds %.5f, mean reported standard error %.5f", K, seeds, sd, se)
	if sd > 1.5*se || se > 4*sd {
		t.Errorf("spread over seeds %v against reported standard error %v", sd, se)
	}
}

// RowSums add up to Sums.
func TestRowSums(t *testing.T) {
	m, w, data := fixedModel(t)
	b, _ := backend.Shared()
	e := NewEvaluator(b, m, w.RotaryInvFreqOrDefault())
	x0, mask := data.Rows([]int{0, 1, 2})
	batch := diffusion.NewBatch(m, x0, mask, 3, data.L, rand.New(rand.NewPCG(2, 3)))
	s, c, err := e.Sums(w.Tensors(), batch)
	if err != nil {
		t.Fatal(err)
	}
	rs, rc, err := e.RowSums(w.Tensors(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rs[0]+rs[1]+rs[2]-s) > 1e-9*math.Abs(s) || rc[0]+rc[1]+rc[2] != c {
		t.Errorf("row sums %v %v, batch sums %v %v", rs, rc, s, c)
	}
}

// seedSpread runs the evaluation at K draws per sequence for seeds 1..S: the
// NLLs, and the mean reported standard error.
func seedSpread(t *testing.T, m diffusion.Model, w *backbone.Weights, data *datasets.PackedArrow, K, S int) (nlls []float64, reportedSE float64) {
	t.Helper()
	for s := 1; s <= S; s++ {
		res := perplexity(t, m, w, data, K, int64(s))
		nlls = append(nlls, res.NLL)
		if res.NLLStderr != nil {
			reportedSE += *res.NLLStderr / float64(S)
		}
	}
	return nlls, reportedSE
}

// logSDStderr is the standard error of log(sd) estimated from xs, from their
// sample kurtosis κ: Var(s²)/σ⁴ ≈ (κ − (n−3)/(n−1))/n, and log sd = ½ log s²
// (1/sqrt(2(n−1)) for normal xs; the 1/t-weighted NELBO has heavier tails).
func logSDStderr(xs []float64) float64 {
	n := float64(len(xs))
	mean, v := meanVar(xs)
	var m4 float64
	for _, x := range xs {
		d := x - mean
		m4 += d * d * d * d / n
	}
	kappa := m4 / (v * v)
	return 0.5 * math.Sqrt(math.Max(kappa-(n-3)/(n-1), 2/(n-1))/n)
}

// K = 8 draws per sequence against the reference's single draw, on a fixed
// checkpoint: with independent draws the spread of the NELBO over seeds falls
// by 1/sqrt(8), and the reported standard error at K = 8 is the single draw's
// spread over sqrt(8). The tolerances are three standard errors of the log of
// a standard deviation estimated over the seeds (logSDStderr). Antithetic
// draws (the default) spread no more than independent ones.
func TestMCDrawsStandardErrorOneOverSqrtK(t *testing.T) {
	m, w, data := fixedModel(t)
	const S1, S8 = 128, 32
	// The time floor 0.05 instead of 1e-3: below it a row's loss sum, weighted
	// by 1/t, has rare huge values (one masked token at t ≈ 1e-3 weighs 1000)
	// whose variance no 128 seeds estimate; the law holds for any floor.
	m = m.WithObjective(diffusion.Objective{Antithetic: true, SamplingEps: 0.05})
	indep := m.WithObjective(diffusion.Objective{Antithetic: false, SamplingEps: 0.05})
	one, _ := seedSpread(t, indep, w, data, 1, S1)
	eight, se8 := seedSpread(t, indep, w, data, 8, S8)
	anti, _ := seedSpread(t, m, w, data, 8, S8)
	mean1, v1 := meanVar(one)
	mean8, v8 := meanVar(eight)
	_, vAnti := meanVar(anti)
	sd1, sd8, sdAnti := math.Sqrt(v1), math.Sqrt(v8), math.Sqrt(vAnti)
	e1, e8, eAnti := logSDStderr(one), logSDStderr(eight), logSDStderr(anti)
	t.Logf("%d rows; K=1: nll %.4f, sd over %d seeds %.5f (log-sd se %.3f); K=8: nll %.4f, sd over %d seeds %.5f (%.3f), reported se %.5f; K=8 antithetic sd %.5f (%.3f)",
		data.NumRows(), mean1, S1, sd1, e1, mean8, S8, sd8, e8, se8, sdAnti, eAnti)
	if r, tol := math.Log(sd8*math.Sqrt(8)/sd1), 3*math.Hypot(e1, e8); math.Abs(r) > tol {
		t.Errorf("spread ratio sd(K=8)/sd(K=1) = %.3f, want 1/sqrt(8) = %.3f within a factor %.2f",
			sd8/sd1, 1/math.Sqrt(8), math.Exp(tol))
	}
	if r, tol := math.Log(se8*math.Sqrt(8)/sd1), 3*e1; math.Abs(r) > tol {
		t.Errorf("reported standard error at K=8 %.5f, want the single draw's spread / sqrt(8) = %.5f within a factor %.2f",
			se8, sd1/math.Sqrt(8), math.Exp(tol))
	}
	if d, tol := math.Abs(mean8-mean1), 4*math.Sqrt(v1/S1+v8/S8); d > tol {
		t.Errorf("K=1 and K=8 estimate different NELBOs: %v and %v (tolerance %v)", mean1, mean8, tol)
	}
	if r, tol := math.Log(sdAnti/sd8), 3*math.Hypot(e8, eAnti); r > tol {
		t.Errorf("antithetic K=8 spreads %v, more than independent draws' %v", sdAnti, sd8)
	}
}
