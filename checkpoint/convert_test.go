package checkpoint

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/tensors"
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
	want, err := tensors.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	got, err := tensors.Open(gotPath)
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
	src, _ := tensors.Open(filepath.Join(fx.Dir, "dit.safetensors"))
	var ts []tensors.Tensor
	for _, info := range src.Tensors() {
		if info.Name == "blocks.1.mlp.2.bias" {
			continue
		}
		b, _ := src.Bytes(info.Name)
		ts = append(ts, tensors.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: b})
	}
	src.Close()
	missing := filepath.Join(dir, "missing.safetensors")
	if err := tensors.WriteFile(missing, ts, nil); err != nil {
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
