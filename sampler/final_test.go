package sampler

import (
	"context"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
)

// The final step's modes, on one step from t = 1 to 0.5 that leaves about
// half the positions masked: greedy fills them with the denoiser's argmax
// (the reference's ddpm step), ancestral draws them (not always the argmax,
// over 64 rows of 8), and both leave no [MASK]; the positions the first step
// filled are kept.
func TestFinalStepModes(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 64, 8
	m, w := tinyModel(t, L)
	mask := int32(m.Backbone.MaskIndex)
	run := func(o Options) *Result {
		t.Helper()
		s, _ := New(b, m, w, 21, nil)
		o.Kind, o.Steps, o.Eps = DDPM, 1, 0.5
		r, err := s.Sample(context.Background(), o, masks(B*L, int(mask)), B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	before := run(Options{})
	greedy := run(Options{NoiseRemoval: true, Final: FinalGreedy})
	reference := run(Options{NoiseRemoval: true})
	ancestral := run(Options{NoiseRemoval: true, Final: FinalAncestral})
	if !equal(greedy.Tokens, reference.Tokens) {
		t.Error("greedy noise removal differs from the reference's ddpm step")
	}
	// The argmax of the denoiser at the state before the final step.
	s, _ := New(b, m, w, 21, nil)
	out, err := s.call("argmax", func(p backbone.Params, in []*Node) []*Node {
		return []*Node{denoiserArgmax(m, p, s.invFreq, in[0], in[1])}
	}, tensors.FromFlatDataAndDimensions(before.Tokens, B, L), tensors.FromFlatDataAndDimensions(s.condFor(0.5, B), B))
	if err != nil {
		t.Fatal(err)
	}
	argmax := tensors.MustCopyFlatData[int32](out[0])
	filled, differ := 0, 0
	for i, tok := range before.Tokens {
		if greedy.Tokens[i] == mask || ancestral.Tokens[i] == mask {
			t.Fatalf("a [MASK] survived the final step at %d", i)
		}
		if tok != mask {
			if greedy.Tokens[i] != tok || ancestral.Tokens[i] != tok {
				t.Fatalf("position %d changed in the final step", i)
			}
			continue
		}
		filled++
		if greedy.Tokens[i] != argmax[i] {
			t.Errorf("greedy: position %d holds %d, argmax %d", i, greedy.Tokens[i], argmax[i])
		}
		if ancestral.Tokens[i] != argmax[i] {
			differ++
		}
	}
	if filled == 0 || differ == 0 {
		t.Errorf("ancestral: %d of %d filled positions differ from the argmax, want some", differ, filled)
	}
	if ancestral.NFE[0] != 2 || greedy.NFE[0] != 2 {
		t.Errorf("NFE ancestral %v greedy %v, want 2 per row", ancestral.NFE[:2], greedy.NFE[:2])
	}
}

// The analytic sampler's greedy final step is the argmax of
// _denoiser_update's probabilities at the last state, and leaves no [MASK].
func TestAnalyticGreedyFinal(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	m, w := tinyModel(t, L)
	run := func(o Options) *Result {
		t.Helper()
		s, _ := New(b, m, w, 4, nil)
		o.Kind, o.Steps, o.Eps = Analytic, 3, 0.5
		r, err := s.Sample(context.Background(), o, masks(B*L, 23), B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	before, greedy := run(Options{}), run(Options{NoiseRemoval: true, Final: FinalGreedy})
	s, _ := New(b, m, w, 4, nil)
	sigma := float32(m.Schedule.Sigma(float64(float32(0.5))))
	out, err := s.call("want", func(p backbone.Params, in []*Node) []*Node {
		sc := score(m, p, s.invFreq, in[0], in[1])
		return []*Node{ArgMax(analyticProbs(in[0], sc, in[1], 23, true), -1)}
	}, tensors.FromFlatDataAndDimensions(before.Tokens, B, L), tensors.FromFlatDataAndDimensions([]float32{sigma, sigma}, B))
	if err != nil {
		t.Fatal(err)
	}
	want := tensors.MustCopyFlatData[int32](out[0])
	for i, tok := range greedy.Tokens {
		if tok == 23 || tok != want[i] {
			t.Fatalf("analytic greedy: %v, want the argmax %v", greedy.Tokens, want)
		}
	}
}

// The ar sampler keeps every token the prior gives (a prompt), not only
// position 0, and runs no model for steps whose next position every row
// gives.
func TestARKeepsGivenTokens(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 2, 8
	cfg := backbone.Config{Arch: backbone.AR, Vocab: 24, Hidden: 16, Heads: 2, Blocks: 1, Length: L, MaskIndex: 23}
	w, _ := backbone.NewWeights(cfg, 5)
	m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
	x := masks(B*L, 23)
	x[0], x[1], x[2], x[L], x[L+1], x[L+2] = 3, 4, 5, 3, 4, 5 // a three-token prefix
	x[L-1], x[2*L-1] = 9, 10                                  // and a suffix token
	for _, prec := range Precisions {
		s, _ := New(b, m, w, 1, nil)
		r, err := s.Sample(context.Background(), Options{Kind: AR, Draws: prec}, x, B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range x {
			if tok != 23 && r.Tokens[i] != tok {
				t.Errorf("%s: given token %d at %d became %d", prec, tok, i, r.Tokens[i])
			}
			if r.Tokens[i] == 23 {
				t.Errorf("%s: position %d left masked", prec, i)
			}
		}
		if r.NFE[0] != 4 { // positions 3..6 sampled; 1, 2 and 7 given in every row: skipped
			t.Errorf("%s: NFE %v, want 4", prec, r.NFE)
		}
	}
}

// Semi-autoregressive sampling from a canvas keeps its prefix and suffix and
// fills everything else; the row cache and ddpm_cache still agree.
func TestSemiARCanvas(t *testing.T) {
	b, _ := backend.Shared()
	const B, L, stride, strides = 2, 8, 4, 2
	outL := L + strides*stride
	m, w := tinyModel(t, L)
	canvas := masks(B*outL, 23)
	for r := 0; r < B; r++ {
		canvas[r*outL], canvas[r*outL+1] = 7, 8 // prefix
		canvas[(r+1)*outL-1] = 9                // suffix in the last window
		canvas[r*outL+5] = int32(11 + r)        // a token in the second window's part
	}
	var runs [][]int32
	for _, kind := range []Kind{RowCache, DDPMCache} {
		for _, prec := range Precisions {
			s, _ := New(b, m, w, 11, nil)
			r, err := s.SampleSemiAR(context.Background(), Options{Kind: kind, Steps: 10, Draws: prec}, canvas, B, L, stride, strides, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, tok := range canvas {
				if tok != 23 && r.Tokens[i] != tok {
					t.Errorf("%s %s: canvas token %d at %d became %d", kind, prec, tok, i, r.Tokens[i])
				}
				if r.Tokens[i] == 23 {
					t.Errorf("%s %s: position %d left masked", kind, prec, i)
				}
			}
			runs = append(runs, r.Tokens)
		}
	}
	if !equal(runs[0], runs[2]) || !equal(runs[1], runs[3]) {
		t.Error("row cache and ddpm_cache semi-AR differ from a canvas")
	}
	if equal(runs[0], runs[1]) {
		t.Error("float64 and float32 draws gave the same samples")
	}
}

func TestOptionsValidateDrawOptions(t *testing.T) {
	m, _ := tinyModel(t, 8)
	d3pm := m
	d3pm.Param, d3pm.T, d3pm.TimeConditioning = diffusion.D3PM, 1000, true
	ar := diffusion.Model{Backbone: backbone.Config{Arch: backbone.AR, Vocab: 24, Length: 8, MaskIndex: 23}, Param: diffusion.ARP}
	base := Options{Kind: RowCache, Steps: 10, Eps: 1e-5}
	with := func(f func(*Options)) Options {
		o := base
		f(&o)
		return o
	}
	cases := []struct {
		m       diffusion.Model
		o       Options
		mention string
	}{
		{m, with(func(o *Options) { o.TopP, o.Temperature, o.Draws, o.Remasking = 0.9, 0.7, Float64, LowConfidence }), ""},
		{m, with(func(o *Options) { o.Kind, o.TopP = Analytic, 0.9 }), "not analytic"},
		{m, with(func(o *Options) { o.Kind, o.Temperature = Analytic, 2 }), "not analytic"},
		{m, with(func(o *Options) { o.Kind, o.Draws, o.Final = Analytic, Float64, FinalGreedy }), ""},
		{m, with(func(o *Options) { o.Kind, o.Remasking = Analytic, LowConfidence }), "ddpm-family"},
		{ar, with(func(o *Options) { o.Kind, o.Remasking = AR, LowConfidence }), "ddpm-family"},
		{ar, with(func(o *Options) { o.Kind, o.TopP, o.Temperature = AR, 0.9, 0.5 }), ""},
		{d3pm, with(func(o *Options) { o.Kind, o.Remasking = DDPM, LowConfidence }), "SUBS"},
		{m, with(func(o *Options) { o.TopP = 1.5 }), "top-p"},
		{m, with(func(o *Options) { o.Temperature = -1 }), "temperature"},
		{m, with(func(o *Options) { o.Draws = "float16" }), "precision"},
		{m, with(func(o *Options) { o.Remasking = "topk" }), "remasking"},
		{m, with(func(o *Options) { o.Final = "sampled" }), "noise removal"},
	}
	for _, c := range cases {
		err := c.o.Validate(c.m, 8)
		if (c.mention == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.mention)) {
			t.Errorf("%+v: err = %v, want mention %q", c.o, err, c.mention)
		}
	}
}

// Low-confidence remasking and top-p with every ddpm-family sampler fill
// every mask, reproducibly for a seed; the row cache still gives ddpm_cache's
// samples.
func TestDrawOptionsSample(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 3, 8
	m, w := tinyModel(t, L)
	o := Options{Steps: 12, Eps: 1e-5, NoiseRemoval: true, Draws: Float64, TopP: 0.9, Temperature: 0.8, Remasking: LowConfidence}
	got := map[Kind][]int32{}
	for _, kind := range []Kind{DDPM, DDPMCache, RowCache} {
		var first []int32
		for range 2 {
			s, _ := New(b, m, w, 13, nil)
			o.Kind = kind
			r, err := s.Sample(context.Background(), o, masks(B*L, 23), B, L, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range r.Tokens {
				if tok == 23 {
					t.Fatalf("%s: a mask survived: %v", kind, r.Tokens)
				}
			}
			if first != nil && !equal(first, r.Tokens) {
				t.Errorf("%s: the same seed gave different samples", kind)
			}
			first = r.Tokens
		}
		got[kind] = first
	}
	if !equal(got[DDPMCache], got[RowCache]) {
		t.Errorf("row cache %v differs from ddpm_cache %v", got[RowCache], got[DDPMCache])
	}
	s, _ := New(b, m, w, 13, constDraws{})
	o.Kind = RowCache
	if _, err := s.Sample(context.Background(), o, masks(B*L, 23), B, L, nil); err == nil || !strings.Contains(err.Error(), "in-graph") {
		t.Errorf("low-confidence with replayed uniforms: err = %v", err)
	}
}
