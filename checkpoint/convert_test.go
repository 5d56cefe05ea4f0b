package checkpoint

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/safetensors"
)

// TestReferenceImportExportRoundTrip: import of each fixture's dit.safetensors and
// ar.safetensors followed by export gives back the same tensors, bit for bit, with
// and without the "backbone." prefix.
func TestReferenceImportExportRoundTrip(t *testing.T) {
	for _, fx := range reffix.All(t) {
		for _, file := range []string{"dit.safetensors", "ar.safetensors"} {
			src := filepath.Join(fx.Dir, file)
			dir := t.TempDir()
			out := filepath.Join(dir, "ckpt")
			if _, err := Import(ImportOptions{Src: src, Out: out}); err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			for _, prefix := range []string{"", backbone.CheckpointPrefix} {
				dst := filepath.Join(dir, "export.safetensors")
				if err := Export(ExportOptions{Src: out, Dst: dst, Prefix: prefix}); err != nil {
					t.Fatal(err)
				}
				assertSameTensors(t, src, dst, prefix)
				// The prefixed export must import again to the same checkpoint.
				if prefix != "" {
					again := filepath.Join(dir, "again")
					if _, err := Import(ImportOptions{Src: dst, Out: again, ConfigJSON: filepath.Join(fx.Dir, "config.json")}); err != nil {
						t.Fatalf("re-import of prefixed export: %v", err)
					}
				}
			}
			r, err := Inspect(out)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Verified || r.Config.Heads != fx.Config.Heads || r.Config.Length != fx.Config.Length {
				t.Errorf("%s: inspect = %+v", file, r)
			}
		}
	}
}

func assertSameTensors(t *testing.T, wantPath, gotPath, prefix string) {
	t.Helper()
	want, err := safetensors.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	got, err := safetensors.Open(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if len(got.Tensors()) != len(want.Tensors()) {
		t.Fatalf("%s: %d tensors, want %d", gotPath, len(got.Tensors()), len(want.Tensors()))
	}
	for _, info := range want.Tensors() {
		gi, ok := got.Info(prefix + info.Name)
		if !ok {
			t.Fatalf("export lacks %q", prefix+info.Name)
		}
		if gi.DType != info.DType || !slices.Equal(gi.Shape, info.Shape) {
			t.Errorf("%s: %s %v, want %s %v", info.Name, gi.DType, gi.Shape, info.DType, info.Shape)
		}
		a, _ := want.Bytes(info.Name)
		b, _ := got.Bytes(prefix + info.Name)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: bytes differ after import/export", info.Name)
		}
	}
}

func TestImportErrors(t *testing.T) {
	fx := reffix.All(t)[0]
	dir := t.TempDir()
	// A state dict missing one tensor.
	src, _ := safetensors.Open(filepath.Join(fx.Dir, "dit.safetensors"))
	var ts []safetensors.Tensor
	for _, info := range src.Tensors() {
		if info.Name == "blocks.1.mlp.2.bias" {
			continue
		}
		b, _ := src.Bytes(info.Name)
		ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: b})
	}
	src.Close()
	missing := filepath.Join(dir, "missing.safetensors")
	if err := safetensors.WriteFile(missing, ts, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		opts    ImportOptions
		mention string
	}{
		{"missing tensor", ImportOptions{Src: missing, ConfigJSON: filepath.Join(fx.Dir, "config.json")}, `"blocks.1.mlp.2.bias"`},
		{"wrong heads", ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), Heads: fx.Config.Heads * 2}, "n_heads"},
		{"not safetensors", ImportOptions{Src: filepath.Join(fx.Dir, "config.json")}, "config.json"},
		{"tokenizer vocabulary", ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), Tokenizer: "gpt2"}, "50258"},
	}
	for _, c := range cases {
		c.opts.Out = filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
		_, err := Import(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want mention of %s", c.name, err, c.mention)
		}
		if _, statErr := os.Stat(c.opts.Out); statErr == nil {
			t.Errorf("%s: a failed import left %s behind", c.name, c.opts.Out)
		}
	}
}

func TestExportDetectsCorruption(t *testing.T) {
	fx := reffix.All(t)[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "ckpt")
	if _, err := Import(ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), Out: out}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, "model.safetensors")
	data, _ := os.ReadFile(path)
	data[len(data)-1] ^= 1
	os.WriteFile(path, data, 0o644)
	err := Export(ExportOptions{Src: out, Dst: filepath.Join(dir, "x.safetensors")})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("export of a corrupted checkpoint: err = %v", err)
	}
}

// A hub GPT-2 directory imports as a scorer checkpoint that exports back to
// the same tensors; a directory missing a tensor or with a config this code
// does not compute is refused, naming the file and the field, and nothing is
// published.
func TestImportGPT2Repo(t *testing.T) {
	src := reffix.Subdirs(t, "MDLM_GPT2_FIXTURES", "gpt2")[0]
	out := filepath.Join(t.TempDir(), "scorer")
	if _, err := Import(ImportOptions{Src: src, Out: out}); err != nil {
		t.Fatal(err)
	}
	ck, err := Open(out)
	if err != nil || ck.Config.Model.Arch != backbone.GPT2 || ck.Config.Tokenizer != "gpt2" {
		t.Fatalf("imported %+v, err %v", ck, err)
	}
	exported := filepath.Join(t.TempDir(), "gpt2.safetensors")
	if err := Export(ExportOptions{Src: out, Dst: exported}); err != nil {
		t.Fatal(err)
	}
	orig, err := safetensors.OpenMmap(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	back, err := safetensors.OpenMmap(exported)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	var kept []safetensors.Tensor
	for _, info := range back.Tensors() {
		want, _, err := orig.Float32(info.Name)
		got, _, _ := back.Float32(info.Name)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs after import and export (%v)", info.Name, err)
		}
		if info.Name != "ln_f.bias" {
			kept = append(kept, safetensors.FromFloat32(info.Name, info.Shape, got))
		}
	}

	cases := []struct {
		name   string
		config func(string) string
		want   string
	}{
		{"missing tensor", nil, `missing parameter "ln_f.bias"`},
		{"activation", func(c string) string { return strings.Replace(c, `"gelu_new"`, `"relu"`, 1) }, `activation_function "relu"`},
		{"untied head", func(c string) string {
			return strings.Replace(c, `"tie_word_embeddings": true`, `"tie_word_embeddings": false`, 1)
		}, "tie_word_embeddings false"},
	}
	cfg, _ := os.ReadFile(filepath.Join(src, "config.json"))
	for _, c := range cases {
		dir := t.TempDir()
		body := string(cfg)
		if c.config != nil {
			body = c.config(body)
			copyFile(t, filepath.Join(src, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
		} else if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), kept, nil); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(body), 0o644)
		out := filepath.Join(t.TempDir(), "x")
		_, err := Import(ImportOptions{Src: dir, Out: out})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: err = %v, want %q and the directory", c.name, err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: published", c.name)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The linear schedule runs with the reference's bounds (configs/noise/linear.yaml:
// σ from 1e-3 to 7), recorded in the method; bounds given explicitly are kept.
func TestMethodScheduleBounds(t *testing.T) {
	cases := []struct {
		m              Method
		lo, hi, s0, s1 float64
	}{
		{Method{Parameterization: "subs", Noise: "linear"}, 1e-3, 7, 1e-3, 7},
		{Method{Parameterization: "subs", Noise: "geometric"}, 1e-4, 20, 1e-4, 20},
		{Method{Parameterization: "subs", Noise: "linear", SigmaMin: 0.5, SigmaMax: 2}, 0.5, 2, 0.5, 2},
		{Method{Parameterization: "subs", Noise: "loglinear", SigmaMin: 3}, 0, 0, 0, 6.907755278982137},
	}
	for _, c := range cases {
		b := c.m.WithBounds()
		if b.SigmaMin != c.lo || b.SigmaMax != c.hi {
			t.Errorf("%+v.WithBounds() = [%g, %g], want [%g, %g]", c.m, b.SigmaMin, b.SigmaMax, c.lo, c.hi)
		}
		cfg := Config{Model: backbone.Config{Arch: backbone.DiT, Vocab: 10, Hidden: 8, Heads: 2, Blocks: 1, Cond: 4, MaskIndex: 9}, Method: c.m}
		m, err := cfg.Diffusion()
		if err != nil {
			t.Fatal(err)
		}
		if s0, s1 := m.Schedule.Sigma(0), m.Schedule.Sigma(1); math.Abs(s0-c.s0) > 1e-9 || math.Abs(s1-c.s1) > 1e-6 {
			t.Errorf("%s: σ(0) = %g, σ(1) = %g; want %g, %g", c.m.Noise, s0, s1, c.s0, c.s1)
		}
	}
}

// TestDiMambaImportExportRoundTrip: every DiMamba fixture's state dict (with its
// tied reverse projections under their second names) imports, and exports back
// to the same tensors, bit for bit; a file whose tied copies disagree is refused
// with the names of both.
func TestDiMambaImportExportRoundTrip(t *testing.T) {
	for _, dir := range reffix.Subdirs(t, "MDLM_DIMAMBA_FIXTURES", "dimamba") {
		src := filepath.Join(dir, "dimamba.safetensors")
		tmp := t.TempDir()
		out := filepath.Join(tmp, "ckpt")
		if _, err := Import(ImportOptions{Src: src, Out: out}); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		dst := filepath.Join(tmp, "export.safetensors")
		if err := Export(ExportOptions{Src: out, Dst: dst}); err != nil {
			t.Fatal(err)
		}
		assertSameTensors(t, src, dst, "")
		// With the released checkpoints' "backbone." prefix: exported, then imported again.
		prefixed := filepath.Join(tmp, "prefixed.safetensors")
		if err := Export(ExportOptions{Src: out, Dst: prefixed, Prefix: backbone.CheckpointPrefix}); err != nil {
			t.Fatal(err)
		}
		assertSameTensors(t, src, prefixed, backbone.CheckpointPrefix)
		if _, err := Import(ImportOptions{Src: prefixed, Out: filepath.Join(tmp, "again"), ConfigJSON: filepath.Join(dir, "config.json")}); err != nil {
			t.Fatalf("re-import of the prefixed export: %v", err)
		}
		r, err := Inspect(out)
		if err != nil {
			t.Fatal(err)
		}
		if r.Config.Arch != backbone.DiMamba || !r.Verified || r.Method == nil || r.Method.Parameterization != "subs" {
			t.Errorf("inspect: %+v", r)
		}

		// Break one tie: the reverse in_proj of layer 0 no longer equals the forward one.
		f, _ := safetensors.Open(src)
		var ts []safetensors.Tensor
		tied := "model.bimamba.backbone.layers.0.mixer.mamba_rev.in_proj.weight"
		for _, info := range f.Tensors() {
			b, _ := f.Bytes(info.Name)
			b = slices.Clone(b)
			if info.Name == tied {
				b[0] ^= 1
			}
			ts = append(ts, safetensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: b})
		}
		f.Close()
		broken := filepath.Join(tmp, "broken.safetensors")
		if err := safetensors.WriteFile(broken, ts, nil); err != nil {
			t.Fatal(err)
		}
		_, err = Import(ImportOptions{Src: broken, Out: filepath.Join(tmp, "broken"), ConfigJSON: filepath.Join(dir, "config.json")})
		if err == nil || !strings.Contains(err.Error(), tied) || !strings.Contains(err.Error(), "mamba_fwd.in_proj.weight") {
			t.Errorf("broken tie: err = %v", err)
		}
	}
}

// Export replaces only a file an earlier export wrote: a user's file, a file
// inside the checkpoint (which would then fail verification) and a directory
// are refused and left as they were (issue 19 review).
func TestHostileExportOutput(t *testing.T) {
	fx := reffix.All(t)[0]
	dir := t.TempDir()
	out := filepath.Join(dir, "ckpt")
	if _, err := Import(ImportOptions{Src: filepath.Join(fx.Dir, "dit.safetensors"), Out: out}); err != nil {
		t.Fatal(err)
	}
	prev := filepath.Join(dir, "prev.safetensors")
	for range 2 { // the second export replaces the first
		if err := Export(ExportOptions{Src: out, Dst: prev}); err != nil {
			t.Fatal(err)
		}
	}
	user := filepath.Join(dir, "user.safetensors")
	os.WriteFile(user, []byte("precious"), 0o644)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	for _, c := range []struct{ dst, want string }{
		{user, "was not written by this mdlm command"},
		{filepath.Join(out, "model.safetensors"), "lies inside the artifact"},
		{filepath.Join(dir, "d"), "not a regular file"},
	} {
		if err := Export(ExportOptions{Src: out, Dst: c.dst}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("export to %s: %v, want %q", c.dst, err, c.want)
		}
	}
	if b, _ := os.ReadFile(user); string(b) != "precious" {
		t.Error("the user's file was replaced")
	}
	if _, err := Open(out); err != nil {
		t.Errorf("the checkpoint no longer opens: %v", err)
	}
}
