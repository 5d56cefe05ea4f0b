package sampler

import (
	"context"
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/internal/testsupport"
)

func tinyModel(t testing.TB, L int) (diffusion.Model, *backbone.Weights) {
	t.Helper()
	cfg, w := testsupport.TinyDiT(t, L)
	return diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}, w
}

func masks(n, mask int) []int32 {
	x := make([]int32, n)
	for i := range x {
		x[i] = int32(mask)
	}
	return x
}

// With many more steps than tokens most steps change nothing: the reference cache
// saves only when no row changed, the per-row cache whenever a row did not, and
// both give the ddpm_cache samples for the same seed.
func TestRowCacheSavesEvaluations(t *testing.T) {
	b, _ := backend.Shared()
	const B, L, steps = 4, 6, 200
	m, w := tinyModel(t, L)
	run := func(kind Kind) *Result {
		s, err := New(b, m, w, 42, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Sample(context.Background(), Options{Kind: kind, Steps: steps, Eps: 1e-5, NoiseRemoval: true}, masks(B*L, 23), B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ref, row, ddpm := run(DDPMCache), run(RowCache), run(DDPM)
	for i := range ref.Tokens {
		if ref.Tokens[i] != row.Tokens[i] {
			t.Fatalf("row cache tokens %v differ from ddpm_cache %v", row.Tokens, ref.Tokens)
		}
		if ref.Tokens[i] == 23 {
			t.Fatalf("a [MASK] survived noise removal: %v", ref.Tokens)
		}
	}
	sum := func(v []int) (s int) {
		for _, x := range v {
			s += x
		}
		return
	}
	t.Logf("NFE per row: ddpm %v, ddpm_cache %v, ddpm_rowcache %v", ddpm.NFE, ref.NFE, row.NFE)
	if sum(ddpm.NFE) != B*(steps+1) {
		t.Errorf("ddpm NFE %v, want %d per row", ddpm.NFE, steps+1)
	}
	if sum(row.NFE) > sum(ref.NFE) || sum(row.NFE) > B*(L+2) {
		t.Errorf("row cache NFE %v: more than ddpm_cache %v or than L+2 per row", row.NFE, ref.NFE)
	}
}

func TestInfillingKeepsTemplate(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	m, w := tinyModel(t, L)
	tmpl := masks(B*L, 23)
	tmpl[0], tmpl[5], tmpl[L+3] = 4, 9, 17
	s, _ := New(b, m, w, 7, nil)
	r, err := s.Sample(context.Background(), Options{Kind: RowCache, Steps: 20, Eps: 1e-5, NoiseRemoval: true}, tmpl, B, L, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Tokens[0] != 4 || r.Tokens[5] != 9 || r.Tokens[L+3] != 17 {
		t.Errorf("template tokens not kept: %v", r.Tokens)
	}
}

func TestSameSeedSameSamples(t *testing.T) {
	b, _ := backend.Shared()
	m, w := tinyModel(t, 8)
	var outs [][]int32
	for _, seed := range []int64{5, 5, 6} {
		s, _ := New(b, m, w, seed, nil)
		r, err := s.Sample(context.Background(), Options{Kind: DDPM, Steps: 10, Eps: 1e-5, NoiseRemoval: true}, masks(16, 23), 2, 8, nil)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, r.Tokens)
	}
	if !equal(outs[0], outs[1]) {
		t.Errorf("same seed, different samples: %v vs %v", outs[0], outs[1])
	}
	if equal(outs[0], outs[2]) {
		t.Errorf("seeds 5 and 6 gave identical samples %v", outs[0])
	}
}

func equal(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestOptionsValidate(t *testing.T) {
	m, _ := tinyModel(t, 8)
	sedd := m
	sedd.Param, sedd.TimeConditioning = diffusion.SEDD, true
	seddNoTC, d3pm := sedd, m
	seddNoTC.TimeConditioning = false
	d3pm.Param, d3pm.T, d3pm.TimeConditioning = diffusion.D3PM, 1000, true
	cases := []struct {
		m       diffusion.Model
		o       Options
		L       int
		mention string
	}{
		{m, Options{Kind: "euler", Steps: 10, Eps: 1e-5}, 8, "unknown sampler"},
		{m, Options{Kind: DDPM, Steps: 0, Eps: 1e-5}, 8, "steps"},
		{seddNoTC, Options{Kind: Analytic, Steps: 10, Eps: 1e-5}, 8, "time-conditioned SEDD"},
		{d3pm, Options{Kind: Analytic, Steps: 10, Eps: 1e-5}, 8, "SEDD or SUBS"},
		{sedd, Options{Kind: DDPM, Steps: 10, Eps: 1e-5}, 8, "analytic"},
		{m, Options{Kind: DDPM, Steps: 10, Eps: 1e-5}, 9, "exceeds the model length"},
		{m, Options{Kind: AR, Steps: 10, Eps: 1e-5}, 8, "AR model"},
		{m, Options{Kind: DDPMCache, Steps: 10, Eps: 1e-5}, 8, ""},
	}
	for _, c := range cases {
		err := c.o.Validate(c.m, c.L)
		if (c.mention == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.mention)) {
			t.Errorf("%+v: err = %v, want mention %q", c.o, err, c.mention)
		}
	}
}

func TestSemiAR(t *testing.T) {
	b, _ := backend.Shared()
	const B, L, stride, strides = 2, 8, 4, 2
	m, w := tinyModel(t, L)
	s, _ := New(b, m, w, 11, nil)
	r, err := s.SampleSemiAR(context.Background(), Options{Kind: RowCache, Steps: 20}, nil, B, L, stride, strides, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.L != L+strides*stride || len(r.Tokens) != B*r.L {
		t.Fatalf("semi-AR output %d x %d, want %d x %d", r.B, r.L, B, L+strides*stride)
	}
	for i, tok := range r.Tokens {
		if tok == 23 {
			t.Fatalf("mask left at %d: %v", i, r.Tokens)
		}
	}
	s2, _ := New(b, m, w, 11, nil)
	r2, err := s2.SampleSemiAR(context.Background(), Options{Kind: DDPMCache, Steps: 20}, nil, B, L, stride, strides, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(r.Tokens, r2.Tokens) {
		t.Errorf("row cache and ddpm_cache semi-AR differ:\n%v\n%v", r.Tokens, r2.Tokens)
	}
	t.Logf("semi-AR NFE per row: rowcache %v, ddpm_cache %v", r.NFE, r2.NFE)
	if _, err := s.SampleSemiAR(context.Background(), Options{Kind: DDPM, Steps: 20}, nil, B, L, stride, strides, nil); err == nil {
		t.Error("semi-AR accepted the uncached ddpm sampler")
	}
}

// constDraws returns u = 0.5 everywhere: constant Gumbel noise, so the AR sampler
// decodes greedily.
type constDraws struct{}

func (constDraws) Next(shape []int) ([]float32, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	u := make([]float32, n)
	for i := range u {
		u[i] = 0.5
	}
	return u, nil
}

func TestARSamplerIsGreedyUnderConstantNoise(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 6
	cfg := backbone.Config{Arch: backbone.AR, Vocab: 24, Hidden: 16, Heads: 2, Blocks: 1, Length: L, MaskIndex: 23}
	w, _ := backbone.NewWeights(cfg, 5)
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32((i*7919)%13-6) * 0.1
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
	s, _ := New(b, m, w, 1, constDraws{})
	x := masks(B*L, 23)
	x[0], x[L] = 3, 5 // BOS per row
	r, err := s.Sample(context.Background(), Options{Kind: AR}, x, B, L, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Re-score the result: each token must be the argmax after its prefix.
	out, err := s.call("ar_logp", func(p backbone.Params, in []*Node) []*Node {
		return []*Node{backbone.Forward(cfg, p, s.invFreq, in[0], nil, layers.Inference, nil)}
	}, tensors.FromFlatDataAndDimensions(r.Tokens, B, L))
	if err != nil {
		t.Fatal(err)
	}
	logp := tensors.MustCopyFlatData[float32](out[0])
	for bb := 0; bb < B; bb++ {
		for i := 0; i < L-1; i++ {
			row := logp[(bb*L+i)*24 : (bb*L+i+1)*24]
			best := 0
			for v := range row {
				if row[v] > row[best] {
					best = v
				}
			}
			if int32(best) != r.Tokens[bb*L+i+1] {
				t.Errorf("row %d position %d: sampled %d, greedy argmax %d", bb, i+1, r.Tokens[bb*L+i+1], best)
			}
		}
	}
	if r.Tokens[0] != 3 || r.Tokens[L] != 5 || r.NFE[0] != L-1 {
		t.Errorf("tokens %v, NFE %v", r.Tokens, r.NFE)
	}
}

// A D3PM model samples with its own probabilities (the plain softmax, [MASK]
// column included, no carry-over), as the reference's _ddpm_update does: a
// denoiser that puts nearly all mass on [MASK] leaves every token masked, and
// the noise-removal argmax keeps [MASK]. Under SUBS probabilities (zero
// masking) the same network would unmask every token.
func TestD3PMSamplesWithItsOwnProbabilities(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	m, w := tinyModel(t, L)
	w.Data["output_layer.linear.bias"][m.Backbone.MaskIndex] = 60 // logit of [MASK]
	for _, c := range []struct {
		param      diffusion.Parameterization
		wantMasked bool
	}{{diffusion.D3PM, true}, {diffusion.SUBS, false}} {
		mm := m
		mm.Param, mm.T, mm.TimeConditioning = c.param, 0, false
		if c.param == diffusion.D3PM {
			mm.T, mm.TimeConditioning = 1000, true
		}
		for _, kind := range []Kind{DDPM, DDPMCache} {
			s, err := New(b, mm, w, 5, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := s.Sample(context.Background(), Options{Kind: kind, Steps: 10, Eps: 1e-5, NoiseRemoval: true}, masks(B*L, 23), B, L, nil)
			if err != nil {
				t.Fatal(err)
			}
			masked := 0
			for _, x := range r.Tokens {
				if x == 23 {
					masked++
				}
			}
			if got := masked == B*L; got != c.wantMasked || (!c.wantMasked && masked != 0) {
				t.Errorf("%s %s: %d of %d tokens still [MASK] after sampling", c.param, kind, masked, B*L)
			}
		}
	}
}

// The analytic sampler on a SUBS model uses the reference's score conversion:
// at a masked position S_y ∝ p_y with S_mask = 1 and Σ_{y≠mask} S_y = 1/expm1(σ)
// (k = 1/expm1(σ)); at a position holding a, S_a = 1, S_mask = expm1(σ), 0
// elsewhere. Sampling with it fills every mask.
func TestAnalyticOnSUBS(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	m, w := tinyModel(t, L)
	mask := m.Backbone.MaskIndex
	V := m.Backbone.Vocab
	exec, err := NewExec(b, func(g *Graph, in []*Node) *Node {
		n := len(m.Backbone.Specs())
		return score(m, backbone.ParamsFromNodes(m.Backbone, in[:n]), w.RotaryInvFreqOrDefault(), in[n], in[n+1])
	})
	if err != nil {
		t.Fatal(err)
	}
	x := masks(B*L, mask)
	x[3], x[L+5] = 7, 11
	sigma := []float32{0.5, 2}
	args := []any{}
	for _, p := range w.Tensors() {
		args = append(args, p)
	}
	out, err := exec.Call(append(args, tensors.FromFlatDataAndDimensions(x, B, L), tensors.FromFlatDataAndDimensions(sigma, B))...)
	if err != nil {
		t.Fatal(err)
	}
	S := tensors.MustCopyFlatData[float32](out[0])
	for bi := 0; bi < B; bi++ {
		em1 := math.Expm1(float64(sigma[bi]))
		for i := 0; i < L; i++ {
			row := S[(bi*L+i)*V : (bi*L+i+1)*V]
			if tok := x[bi*L+i]; tok != int32(mask) {
				for v, s := range row {
					want := 0.0
					switch {
					case v == int(tok):
						want = 1
					case v == mask:
						want = em1
					}
					if math.Abs(float64(s)-want) > 1e-5*math.Max(1, want) {
						t.Fatalf("row %d pos %d holding %d: S[%d] = %g, want %g", bi, i, tok, v, s, want)
					}
				}
				continue
			}
			sum := 0.0
			for v, s := range row {
				if v != mask {
					sum += float64(s)
				}
			}
			if row[mask] != 1 || math.Abs(sum-1/em1) > 1e-4/em1 {
				t.Fatalf("row %d pos %d masked: S_mask %g, Σ S_y %g, want 1 and %g", bi, i, row[mask], sum, 1/em1)
			}
		}
	}
	s, _ := New(b, m, w, 4, nil)
	r, err := s.Sample(context.Background(), Options{Kind: Analytic, Steps: 12, Eps: 1e-5, NoiseRemoval: true}, masks(B*L, mask), B, L, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range r.Tokens {
		if tok == int32(mask) {
			t.Fatalf("analytic SUBS sampling left a mask: %v", r.Tokens)
		}
	}
}

// A DiMamba denoiser samples with every ddpm-family sampler and the analytic
// one: no [MASK] is left and, as with the DiT, the [MASK] logit never wins
// (its lm_head has no bias, so zero masking is added to the logits).
func TestDiMambaSamples(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 10
	cfg := backbone.Config{Arch: backbone.DiMamba, Vocab: 24, Hidden: 16, Blocks: 1, Cond: 8, Length: L, MaskIndex: 23}.WithMambaDefaults()
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Data["model.lm_head.weight"] { // a denoiser far from uniform
		w.Data["model.lm_head.weight"][i] = float32((i*7919)%13-6) * 0.2
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps}}
	for _, kind := range []Kind{DDPM, DDPMCache, RowCache, Analytic} {
		s, err := New(b, m, w, 5, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Sample(context.Background(), Options{Kind: kind, Steps: 16, Eps: 1e-5, NoiseRemoval: true}, masks(B*L, cfg.MaskIndex), B, L, nil)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, tok := range r.Tokens {
			if tok == int32(cfg.MaskIndex) || tok < 0 || int(tok) >= cfg.Vocab {
				t.Fatalf("%s: token %d in %v", kind, tok, r.Tokens)
			}
		}
	}
}

// The two-stage update draws the reference update's distribution: a masked
// position stays [MASK] with probability mc_s/mc_t and otherwise takes v with
// probability p_v (here over 4000 positions, within 5 standard deviations).
func TestTwoStageUpdateDistribution(t *testing.T) {
	b, _ := backend.Shared()
	const L, V = 4000, 5
	m, w := tinyModel(t, 8)
	m.Backbone.Vocab, m.Backbone.MaskIndex = V, V-1
	s, err := New(b, m, w, 11, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := []float32{0.1, 0.2, 0.3, 0.4, 0}
	probs := make([]float32, 0, L*V)
	for i := 0; i < L; i++ {
		probs = append(probs, p...)
	}
	const mct, mcs = 0.6, 0.3
	next, err := s.twoStageUpdate(Options{}, masks(L, V-1), tensors.FromFlatDataAndDimensions(probs, 1, L, V), mct, mcs, 1, L)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]float64, V)
	for _, tok := range next {
		counts[tok]++
	}
	for v := 0; v < V; v++ {
		want := float64(p[v]) * (mct - mcs) / mct
		if v == V-1 {
			want = mcs / mct
		}
		got := counts[v] / L
		if sd := math.Sqrt(want * (1 - want) / L); math.Abs(got-want) > 5*sd+1e-9 {
			t.Errorf("token %d: frequency %.4f, want %.4f (sd %.4f)", v, got, want, sd)
		}
	}
}
