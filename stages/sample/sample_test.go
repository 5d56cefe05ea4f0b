package sample

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/tokenizer"
)

func fixtureCheckpoint(t *testing.T, file string) string {
	t.Helper()
	fx := reffix.All(t)[0]
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := checkpoint.Import(checkpoint.ImportOptions{Src: filepath.Join(fx.Dir, file), Out: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSampleStage(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ck := fixtureCheckpoint(t, "dit.safetensors")
	base := Options{Checkpoint: ck, Sampler: string(sampler.RowCache), Steps: 20, Num: 3, Batch: 2, Seed: 9, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn}
	run := func(o Options) []datasets.Sample {
		o.Out = filepath.Join(t.TempDir(), "s")
		if _, err := Run(context.Background(), b, o); err != nil {
			t.Fatal(err)
		}
		rows, err := datasets.ReadSamples(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	a, again := run(base), run(base)
	if len(a) != 3 || len(a[0].Tokens) != 32 {
		t.Fatalf("got %d rows of %d tokens", len(a), len(a[0].Tokens))
	}
	if !reflect.DeepEqual(a, again) {
		t.Error("the same seed gave different samples")
	}
	other := base
	other.Seed = 10
	if reflect.DeepEqual(a, run(other)) {
		t.Error("different seeds gave the same samples")
	}
	infill := base
	infill.Template = "7,_,9"
	for _, r := range run(infill) {
		if r.Tokens[0] != 7 || r.Tokens[2] != 9 {
			t.Errorf("template not kept: %v", r.Tokens[:3])
		}
	}
	semi := base
	semi.Sampler, semi.StrideLength, semi.NumStrides = string(sampler.DDPMCache), 8, 2
	if rows := run(semi); len(rows[0].Tokens) != 32+16 {
		t.Errorf("semi-AR rows have %d tokens, want 48", len(rows[0].Tokens))
	}
}

func TestSampleStageRejectsBadInput(t *testing.T) {
	b, _ := backend.Shared()
	ck := fixtureCheckpoint(t, "dit.safetensors")
	arCk := fixtureCheckpoint(t, "ar.safetensors")
	base := Options{Checkpoint: ck, Sampler: string(sampler.DDPM), Steps: 5, Num: 1, Eps: 1e-5}
	cases := []struct {
		name    string
		mutate  func(*Options)
		mention string
	}{
		{"unknown sampler", func(o *Options) { o.Sampler = "euler" }, "unknown sampler"},
		{"steps", func(o *Options) { o.Steps = 0 }, "steps"},
		{"ar on subs", func(o *Options) { o.Sampler = string(sampler.AR) }, "AR model"},
		{"diffusion sampler on AR", func(o *Options) { o.Checkpoint = arCk }, "AR model"},
		{"template too long", func(o *Options) { o.Template = strings.Repeat("1,", 32) + "1" }, "longer than"},
		{"template id", func(o *Options) { o.Template = "1,x" }, `"x"`},
		{"length", func(o *Options) { o.Length = 64 }, "exceeds the model length"},
		{"num", func(o *Options) { o.Num = 0 }, "--num"},
		{"missing checkpoint", func(o *Options) { o.Checkpoint = filepath.Join(t.TempDir(), "none") }, "none"},
	}
	for _, c := range cases {
		o := base
		c.mutate(&o)
		o.Out = filepath.Join(t.TempDir(), "out")
		_, err := Run(context.Background(), b, o)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.mention)
		}
		if _, statErr := os.Stat(o.Out); statErr == nil {
			t.Errorf("%s: output created despite the error", c.name)
		}
	}
}

func TestSampleStageDecodesText(t *testing.T) {
	b, _ := backend.Shared()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 12, MaskIndex: 258}
	w, err := backbone.NewWeights(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := checkpoint.Save(dir, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "bytes"}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "s")
	if _, err := Run(context.Background(), b, Options{Checkpoint: dir, Out: out, Sampler: string(sampler.RowCache), Steps: 10, Num: 2, Seed: 1, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn, Template: "72,105"}); err != nil {
		t.Fatal(err)
	}
	rows, err := datasets.ReadSamples(out)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tokenizer.Load("bytes")
	for _, r := range rows {
		want, _ := tok.Decode(toInts(r.Tokens))
		if r.Text != want || !strings.HasPrefix(r.Text, "Hi") {
			t.Errorf("text %q, want %q (starting with the template's \"Hi\")", r.Text, want)
		}
	}
	// A tokenizer whose vocabulary does not fit the model is refused.
	bad := filepath.Join(t.TempDir(), "bad")
	checkpoint.Save(bad, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "gpt2"}, w, artifact.Manifest{})
	_, err = Run(context.Background(), b, Options{Checkpoint: bad, Out: filepath.Join(t.TempDir(), "x"), Sampler: string(sampler.DDPM), Steps: 2, Num: 1, Eps: 1e-5})
	if err == nil || !strings.Contains(err.Error(), "50258") {
		t.Errorf("mismatched tokenizer: err = %v", err)
	}
}

// Run executes the stage as the command does, with the flags' defaults for
// the sampling options a test leaves at zero.
func Run(ctx context.Context, _ compute.Backend, o Options) (artifact.Manifest, error) {
	if o.DrawPrecision == "" {
		o.DrawPrecision = string(sampler.Float64)
	}
	if o.TopP == 0 {
		o.TopP = 1
	}
	if o.Temperature == 0 {
		o.Temperature = 1
	}
	if o.Remasking == "" {
		o.Remasking = string(sampler.RandomRemasking)
	}
	return stagetest.Run(ctx, Def, &o)
}

// --no-ema samples with the raw weights: the same tokens as a checkpoint that
// holds only those weights, and (here) other tokens than with the EMA.
func TestSampleNoEMA(t *testing.T) {
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 64, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 16, MaskIndex: 63}
	raw, _ := backbone.NewWeights(cfg, 1)
	ema, _ := backbone.NewWeights(cfg, 2)
	for k, w := range []*backbone.Weights{raw, ema} { // different non-zero output layers, so the weights matter
		for i := range w.Data["output_layer.linear.weight"] {
			w.Data["output_layer.linear.weight"][i] = float32(i%(7+4*k)-3) * 0.3
		}
	}
	dir := t.TempDir()
	both, only := filepath.Join(dir, "both"), filepath.Join(dir, "raw")
	mm := map[string][]float32{}
	for _, s := range cfg.Specs() {
		mm[s.Name] = make([]float32, s.Size())
	}
	mcfg := checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch)}
	if _, err := checkpoint.SaveTraining(both, checkpoint.Training{Config: mcfg, Raw: raw, EMA: ema, M: mm, V: mm}, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := checkpoint.Save(only, mcfg, raw, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	draw := func(ck string, noEMA bool) ([]datasets.Sample, artifact.Manifest) {
		out := filepath.Join(t.TempDir(), "s")
		m, err := Run(context.Background(), nil, Options{Checkpoint: ck, Out: out, Sampler: "ddpm", Steps: 8, Num: 4, Seed: 3, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn, NoEMA: noEMA})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := datasets.ReadSamples(out)
		if err != nil {
			t.Fatal(err)
		}
		return rows, m
	}
	withEMA, m1 := draw(both, false)
	noEMA, m2 := draw(both, true)
	rawOnly, _ := draw(only, false)
	if !reflect.DeepEqual(noEMA, rawOnly) {
		t.Error("--no-ema did not sample with the raw weights")
	}
	if reflect.DeepEqual(withEMA, noEMA) {
		t.Error("--no-ema gave the EMA's samples")
	}
	if m1.Params["ema"] != true || m2.Params["ema"] != false {
		t.Errorf("manifest ema: %v, %v", m1.Params["ema"], m2.Params["ema"])
	}
}
