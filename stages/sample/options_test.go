package sample

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// parseFlags parses a sample command line as mdlm does (kong over Options).
func parseFlags(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	var o Options
	k, err := kong.New(&o, kong.Name("sample"), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.Parse(append([]string{"--checkpoint", "ck", "-o", "out"}, args...))
	return o, err
}

// --noise-removal is still the boolean it was (bare, --no-, =false, a
// pipeline's value) and also names greedy and ancestral.
func TestNoiseRemovalFlag(t *testing.T) {
	cases := []struct {
		args []string
		want NoiseRemoval
	}{
		{nil, NoiseRemovalOn},
		{[]string{"--noise-removal"}, NoiseRemovalOn},
		{[]string{"--no-noise-removal"}, NoiseRemovalOff},
		{[]string{"--noise-removal=false"}, NoiseRemovalOff},
		{[]string{"--noise-removal=true"}, NoiseRemovalOn},
		{[]string{"--noise-removal=none"}, NoiseRemovalOff},
		{[]string{"--noise-removal=greedy"}, NoiseRemovalGreedy},
		{[]string{"--noise-removal", "greedy"}, NoiseRemovalGreedy},
		{[]string{"--noise-removal", "ancestral", "--steps", "3"}, NoiseRemovalAncestral},
		{[]string{"--noise-removal", "--steps", "3"}, NoiseRemovalOn},
	}
	for _, c := range cases {
		o, err := parseFlags(t, c.args...)
		if err != nil || o.NoiseRemoval != c.want {
			t.Errorf("%v: %q, %v; want %q", c.args, o.NoiseRemoval, err, c.want)
		}
	}
	for _, bad := range [][]string{{"--noise-removal=sometimes"}, {"--noise-removal", "sometimes"}, {"--no-noise-removal=greedy"}} {
		if _, err := parseFlags(t, bad...); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
	// A pipeline's with: values render as before and parse back.
	sp, err := stage.SpecOf(Def)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := sp.Flag("noise-removal"); !f.Bool || f.Default != "true" {
		t.Errorf("noise-removal flag %+v: want a bool defaulting to true", f)
	}
	for v, want := range map[any]NoiseRemoval{false: NoiseRemovalOff, true: NoiseRemovalOn, "greedy": NoiseRemovalGreedy} {
		args := pipeline.Args(sp, map[string]string{"model": "ck"}, map[string]any{"noise-removal": v}, "out")
		var o Options
		k, _ := kong.New(&o)
		if _, err := k.Parse(args[1:]); err != nil || o.NoiseRemoval != want {
			t.Errorf("with noise-removal: %v -> %v: %q, %v", v, args, o.NoiseRemoval, err)
		}
	}
}

// The new flags' defaults: float64 draws, top-p and temperature off, random
// remasking.
func TestSamplingFlagDefaults(t *testing.T) {
	o, err := parseFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	so, err := o.samplerOptions()
	if err != nil {
		t.Fatal(err)
	}
	want := sampler.Options{Kind: sampler.RowCache, Steps: 1000, Eps: 1e-5, NoiseRemoval: true, Draws: sampler.Float64, TopP: 1, Temperature: 1, Remasking: sampler.RandomRemasking}
	if so != want {
		t.Errorf("defaults %+v, want %+v", so, want)
	}
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--top-p", "0"}, "--top-p"},
		{[]string{"--top-p", "1.5"}, "--top-p"},
		{[]string{"--temperature", "0"}, "--temperature"},
		{[]string{"--temperature", "-2"}, "--temperature"},
		{[]string{"--temperature", "+Inf"}, "--temperature"},
	} {
		o, err := parseFlags(t, c.args...)
		if err == nil {
			_, err = o.samplerOptions()
		}
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%v: err = %v, want mention of %s", c.args, err, c.mention)
		}
	}
	if _, err := parseFlags(t, "--draw-precision", "float16"); err == nil {
		t.Error("--draw-precision float16 accepted")
	}
	if _, err := parseFlags(t, "--remasking", "topk"); err == nil {
		t.Error("--remasking topk accepted")
	}
}

// arBytesCheckpoint is a small AR model with the bytes tokenizer.
func arBytesCheckpoint(t *testing.T) string {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.AR, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Length: 12, MaskIndex: 258}
	w, err := backbone.NewWeights(cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ar")
	if _, err := checkpoint.Save(dir, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "bytes"}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sampleRows(t *testing.T, o Options) ([]datasets.Sample, artifact.Manifest) {
	t.Helper()
	b, _ := backend.Shared()
	o.Out = filepath.Join(t.TempDir(), "s")
	m, err := Run(context.Background(), b, o)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := datasets.ReadSamples(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	return rows, m
}

// --prefix and --suffix are tokenized with the checkpoint's tokenizer and
// kept exactly by every sampler, semi-autoregressive and ar included; the
// sampled text begins with the prefix and ends with the suffix.
func TestPrefixAndSuffixKept(t *testing.T) {
	dit, ar := bytesCheckpoint(t), arBytesCheckpoint(t)
	tok, _ := tokenizer.Load("bytes")
	pre, suf := "Hi", "!?"
	preIDs, sufIDs := tok.Encode(pre), tok.Encode(suf)
	base := Options{Checkpoint: dit, Steps: 10, Num: 3, Seed: 2, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn, Prefix: pre, Suffix: suf}
	cases := map[string]func(*Options){
		"ddpm_rowcache": func(o *Options) { o.Sampler = string(sampler.RowCache) },
		"ddpm":          func(o *Options) { o.Sampler = string(sampler.DDPM) },
		"ddpm_cache":    func(o *Options) { o.Sampler, o.NoiseRemoval = string(sampler.DDPMCache), NoiseRemovalAncestral },
		"analytic":      func(o *Options) { o.Sampler = string(sampler.Analytic) },
		"low-confidence": func(o *Options) {
			o.Sampler, o.Remasking, o.TopP, o.Temperature = string(sampler.RowCache), string(sampler.LowConfidence), 0.9, 0.7
		},
		"semi-ar": func(o *Options) { o.Sampler, o.StrideLength, o.NumStrides = string(sampler.DDPMCache), 4, 2 },
		"ar":      func(o *Options) { o.Checkpoint, o.Sampler, o.TopP = ar, string(sampler.AR), 0.8 },
	}
	for name, f := range cases {
		o := base
		f(&o)
		rows, _ := sampleRows(t, o)
		if len(rows) != 3 {
			t.Fatalf("%s: %d rows", name, len(rows))
		}
		for _, r := range rows {
			n := len(r.Tokens)
			for i, id := range preIDs {
				if int(r.Tokens[i]) != id {
					t.Errorf("%s: prefix not kept: %v", name, r.Tokens)
				}
			}
			for i, id := range sufIDs {
				if int(r.Tokens[n-len(sufIDs)+i]) != id {
					t.Errorf("%s: suffix not kept: %v", name, r.Tokens)
				}
			}
			if !strings.HasPrefix(r.Text, pre) || !strings.HasSuffix(r.Text, suf) {
				t.Errorf("%s: text %q does not begin with %q and end with %q", name, r.Text, pre, suf)
			}
			for _, x := range r.Tokens {
				if x == 258 {
					t.Errorf("%s: a [MASK] left: %v", name, r.Tokens)
				}
			}
		}
	}
}

// --prompts: --num samples for each row of the file, in order, each keeping
// its own prefix, suffix or template; the manifest records the file's digest
// and the sampling options.
func TestPromptsFile(t *testing.T) {
	dit := bytesCheckpoint(t)
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	body := `{"prefix": "Ab"}` + "\n\n" + `{"suffix": "yz"}` + "\n" + `{"template": "1,_,3"}` + "\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, m := sampleRows(t, Options{Checkpoint: dit, Sampler: string(sampler.RowCache), Steps: 8, Num: 2, Batch: 4, Seed: 1,
		Eps: 1e-5, NoiseRemoval: NoiseRemovalOn, TopP: 0.95, Prompts: file})
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 3 prompts x 2", len(rows))
	}
	for i, r := range rows {
		n := len(r.Tokens)
		var ok bool
		switch i / 2 {
		case 0:
			ok = strings.HasPrefix(r.Text, "Ab")
		case 1:
			ok = strings.HasSuffix(r.Text, "yz")
		case 2:
			ok = r.Tokens[0] == 1 && r.Tokens[2] == 3
		}
		if !ok || r.Index != int64(i) || n != 12 {
			t.Errorf("row %d (index %d): %v %q does not keep prompt %d", i, r.Index, r.Tokens, r.Text, i/2)
		}
	}
	p := m.Params
	if p["num_prompts"] != float64(3) || p["num"] != float64(6) || p["top_p"] != 0.95 || p["draw_precision"] != "float64" ||
		len(p["prompts_sha256"].(string)) != 64 || p["noise_removal"] != true || p["noise_removal_mode"] != "true" {
		t.Errorf("manifest params %v", p)
	}
}

func TestPromptErrors(t *testing.T) {
	dit, noTok := bytesCheckpoint(t), fixtureCheckpoint(t, "dit.safetensors")
	file := func(body string) string {
		f := filepath.Join(t.TempDir(), "p.jsonl")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	base := Options{Checkpoint: dit, Sampler: string(sampler.RowCache), Steps: 4, Num: 1, Eps: 1e-5}
	cases := []struct {
		name    string
		mutate  func(*Options)
		mention string
	}{
		{"no tokenizer", func(o *Options) { o.Checkpoint, o.Prefix = noTok, "hi" }, "names none"},
		{"prefix and template", func(o *Options) { o.Prefix, o.Template = "a", "1,_" }, "--template with --prefix"},
		{"prompts and prefix", func(o *Options) { o.Prompts, o.Prefix = file(`{"prefix":"a"}`), "a" }, "drop --prefix"},
		{"too long", func(o *Options) { o.Prefix, o.Suffix = "abcdefgh", "ijklm" }, "more than the length 12"},
		{"row too long", func(o *Options) { o.Prompts = file("{}\n" + `{"prefix":"abcdefghijklm"}`) }, "--prompts row 2"},
		{"unknown key", func(o *Options) { o.Prompts = file(`{"prefix":"a","prompt":"b"}`) }, "line 1"},
		{"template row", func(o *Options) { o.Prompts = file(`{"template":"1,x"}`) }, `"x"`},
		{"empty file", func(o *Options) { o.Prompts = file("\n") }, "no prompts"},
		{"ar without BOS", func(o *Options) { o.Checkpoint, o.Sampler, o.Suffix = arBytesCheckpoint(t), "ar", "z" }, "BOS"},
		{"analytic top-p", func(o *Options) { o.Sampler, o.TopP = "analytic", 0.9 }, "not analytic"},
		{"analytic low-confidence", func(o *Options) { o.Sampler, o.Remasking = "analytic", "low-confidence" }, "ddpm-family"},
	}
	for _, c := range cases {
		o := base
		c.mutate(&o)
		o.Out = filepath.Join(t.TempDir(), "out")
		_, err := Run(context.Background(), nil, o)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.mention)
		}
		if _, statErr := os.Stat(o.Out); statErr == nil {
			t.Errorf("%s: output created despite the error", c.name)
		}
	}
}

// The default float64 draws give other samples than the reference's float32
// ones for the same seed (and the manifest says which).
func TestDrawPrecisionDefault(t *testing.T) {
	ck := fixtureCheckpoint(t, "dit.safetensors")
	o := Options{Checkpoint: ck, Sampler: string(sampler.RowCache), Steps: 20, Num: 2, Seed: 9, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn}
	f64, m64 := sampleRows(t, o)
	o.DrawPrecision = string(sampler.Float32)
	f32, m32 := sampleRows(t, o)
	same := true
	for i := range f64 {
		same = same && equalTokens(f64[i].Tokens, f32[i].Tokens)
	}
	if same {
		t.Error("float64 and float32 draws gave the same samples")
	}
	if m64.Params["draw_precision"] != "float64" || m32.Params["draw_precision"] != "float32" {
		t.Errorf("manifest draw_precision %v, %v", m64.Params["draw_precision"], m32.Params["draw_precision"])
	}
}

func equalTokens(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
