package checkpoint

import (
	"archive/zip"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/safetensors"
	"github.com/mdlm-go/mdlm/torchckpt"
)

// Every Lightning fixture imports, by default, with the EMA weights as the
// reference evaluates (bit-exact with expected_ema), with --no-ema with the raw
// state_dict (bit-exact with expected_raw, rotary buffer included), and with
// the method and sizes of its Hydra config.
func TestLightningReferenceImport(t *testing.T) {
	for _, dir := range reffix.Subdirs(t, "MDLM_LIGHTNING_FIXTURES", "lightning") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var fx struct {
				GlobalStep       int    `json:"global_step"`
				Parameterization string `json:"parameterization"`
				T                int    `json:"T"`
				TimeConditioning bool   `json:"time_conditioning"`
				Backbone         string `json:"backbone"`
				Hidden           int    `json:"hidden_size"`
				Heads            int    `json:"n_heads"`
				Blocks           int    `json:"n_blocks"`
				Cond             int    `json:"cond_dim"`
				Vocab            int    `json:"vocab_size"`
				Length           int    `json:"length"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
			if err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(raw, &fx)
			ckpts, _ := filepath.Glob(filepath.Join(dir, "*.ckpt"))
			if len(ckpts) != 1 {
				t.Fatalf("want one .ckpt in %s, found %v", dir, ckpts)
			}
			for _, c := range []struct {
				noEMA    bool
				expected string
			}{{false, "expected_ema.safetensors"}, {true, "expected_raw.safetensors"}} {
				out := filepath.Join(t.TempDir(), "ck")
				if _, err := Import(ImportOptions{Src: ckpts[0], Out: out, NoEMA: c.noEMA}); err != nil {
					t.Fatal(err)
				}
				ck, err := Open(out)
				if err != nil {
					t.Fatal(err)
				}
				wantModel := backbone.Config{Arch: backbone.Arch(fx.Backbone), Vocab: fx.Vocab, Hidden: fx.Hidden, Heads: fx.Heads,
					Blocks: fx.Blocks, Cond: fx.Cond, Length: fx.Length, MaskIndex: fx.Vocab - 1, Dropout: ck.Config.Model.Dropout}
				wantMethod := Method{Parameterization: fx.Parameterization, T: fx.T, TimeConditioning: fx.TimeConditioning, Noise: "loglinear"}
				if ck.Config.Model != wantModel || ck.Config.Method != wantMethod {
					t.Errorf("config %+v / %+v, want %+v / %+v", ck.Config.Model, ck.Config.Method, wantModel, wantMethod)
				}
				want, err := safetensors.OpenMmap(filepath.Join(dir, c.expected))
				if err != nil {
					t.Fatal(err)
				}
				got, err := safetensors.OpenMmap(filepath.Join(out, WeightsFile))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, info := range want.Tensors() {
					w, _, _ := want.Float32(info.Name)
					g, _, err := got.Float32(info.Name)
					if err != nil || !reflect.DeepEqual(g, w) {
						t.Errorf("%s: %s differs from %s (%v)", c.expected, info.Name, c.expected, err)
					}
					n++
				}
				want.Close()
				got.Close()
				t.Logf("--no-ema=%v: %d tensors bit-exact with %s", c.noEMA, n, c.expected)
			}
		})
	}
}

// Bad .ckpt files are refused with errors naming the file and what is wrong;
// nothing is published.
func TestLightningImportErrors(t *testing.T) {
	dir := t.TempDir()
	src := reffix.Subdirs(t, "MDLM_LIGHTNING_FIXTURES", "lightning")[0]
	ckpts, _ := filepath.Glob(filepath.Join(src, "*.ckpt"))
	whole, err := os.ReadFile(ckpts[0])
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.ckpt")
	os.WriteFile(truncated, whole[:len(whole)/2], 0o644)
	notZip := filepath.Join(dir, "text.ckpt")
	os.WriteFile(notZip, []byte("not a checkpoint\n"), 0o644)
	proto6 := filepath.Join(dir, "proto6.ckpt")
	writeZip(t, proto6, map[string][]byte{"archive/data.pkl": []byte("\x80\x06}."), "archive/version": []byte("3\n")})
	hugeString := filepath.Join(dir, "huge.ckpt") // a BINUNICODE whose length field says 1.9 GB
	writeZip(t, hugeString, map[string][]byte{"archive/data.pkl": []byte("\x80\x02}q\x00X\n\x00\x00sdate_dictq\x01}q\x02s.")})
	unknownOp := filepath.Join(dir, "op.ckpt")
	writeZip(t, unknownOp, map[string][]byte{"archive/data.pkl": []byte("\x80\x02\xff.")})
	noState := filepath.Join(dir, "nostate.ckpt")
	writeZip(t, noState, map[string][]byte{"archive/data.pkl": []byte("\x80\x02}q\x00."), "archive/version": []byte("3\n")})
	cases := []struct {
		src, want string
	}{
		{truncated, "not a torch.save zip archive"},
		{notZip, "not a torch.save zip archive"},
		{proto6, "pickle at offset 0: protocol 6, want 2 to 5"},
		{noState, "no state_dict"},
		{hugeString, "claims 1929379850 bytes"},
		{unknownOp, "unknown opcode 0xff"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "x")
		_, err := Import(ImportOptions{Src: c.src, Out: out})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.src) {
			t.Errorf("%s: err = %v, want %q and the file", filepath.Base(c.src), err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: published", filepath.Base(c.src))
		}
	}
	// A checkpoint without EMA imports only with --no-ema, and says so.
	l, err := torchckpt.Read(ckpts[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := lightningConfig(l)
	if err != nil {
		t.Fatal(err)
	}
	l.EMA = nil
	if _, err := lightningWeights(l, cfg, true); err == nil || !strings.Contains(err.Error(), "ema.shadow_params") || !strings.Contains(err.Error(), "--no-ema") {
		t.Errorf("missing ema: err = %v", err)
	}
	delete(l.State, "backbone.blocks.0.attn_out.weight")
	if _, err := lightningWeights(l, cfg, false); err == nil || !strings.Contains(err.Error(), `"backbone.blocks.0.attn_out.weight"`) {
		t.Errorf("missing state_dict tensor: err = %v", err)
	}
}

func writeZip(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		w.Write(files[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// A DiMamba training checkpoint in the reference trainer's format
// (testdata/dimamba-lightning/make.py: PyTorch's own parameters() order over the
// reference's module tree, tied reverse projections in the state_dict) imports
// with its EMA weights (there the fixture weights halved) or, with --no-ema, the
// raw state_dict (the fixture weights), and with the sizes of its Hydra config.
func TestLightningDiMambaImport(t *testing.T) {
	src := filepath.Join("testdata", "dimamba-lightning", "dimamba.ckpt")
	dir := reffix.Subdirs(t, "MDLM_DIMAMBA_FIXTURES", "dimamba")[0]
	ref, err := safetensors.OpenMmap(filepath.Join(dir, "dimamba.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, noEMA := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "ck")
		if _, err := Import(ImportOptions{Src: src, Out: out, NoEMA: noEMA}); err != nil {
			t.Fatal(err)
		}
		ck, err := Open(out)
		if err != nil {
			t.Fatal(err)
		}
		m := ck.Config.Model
		if m.Arch != backbone.DiMamba || m.Hidden != 32 || m.Blocks != 2 || m.Cond != 16 || m.Vocab != 64 || m.DtRank != 2 || m.DState != 16 {
			t.Fatalf("config %+v", m)
		}
		for _, s := range m.Specs() {
			want, _, err := ref.Float32(s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !noEMA {
				for i := range want {
					want[i] *= 0.5
				}
			}
			if got := ck.Weights.Data[s.Name]; !reflect.DeepEqual(got, want) {
				t.Errorf("no-ema=%v: %s differs", noEMA, s.Name)
			}
		}
	}
}
