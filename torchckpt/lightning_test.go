package torchckpt

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dimambaCkpt is a Lightning checkpoint PyTorch itself wrote: its users are
// this package's reader tests and checkpoint's TestLightningDiMambaImport,
// beside which it lives (make.py there writes it).
var dimambaCkpt = filepath.Join("..", "checkpoint", "testdata", "dimamba-lightning", "dimamba.ckpt")

// Read on the PyTorch-written archive finds every part mdlm uses: the
// state_dict's tensors, the EMA's shadow params, decay and update count,
// global_step and the Hydra config as plain values.
func TestReadDiMambaArchive(t *testing.T) {
	l, err := Read(dimambaCkpt)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.State) == 0 || len(l.EMA) == 0 {
		t.Fatalf("%d state_dict tensors and %d shadow params, want some of each", len(l.State), len(l.EMA))
	}
	for name, x := range l.State {
		if n := numel(x.Shape); n != len(x.Data) {
			t.Errorf("state_dict[%q]: shape %v holds %d elements, data %d", name, x.Shape, n, len(x.Data))
		}
	}
	if l.EMADecay <= 0 || l.EMADecay >= 1 {
		t.Errorf("ema decay %v, want in (0, 1)", l.EMADecay)
	}
	model, _ := l.Config["model"].(map[string]any)
	if backbone := l.Config["backbone"]; backbone != "dimamba" || model["hidden_size"] != 32 {
		t.Errorf("config backbone %v, model.hidden_size %v, want dimamba and 32", backbone, model["hidden_size"])
	}
	if l.Path != dimambaCkpt {
		t.Errorf("path %q, want %q", l.Path, dimambaCkpt)
	}
}

// IsArchive accepts a regular file named like a torch.save checkpoint or
// starting with a zip header, and nothing else.
func TestIsArchive(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.ckpt"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want bool
	}{
		{write("a.ckpt", "anything"), true},
		{write("a.pt", ""), true},
		{write("a.pth", ""), true},
		{write("model.bin", "PK\x03\x04rest"), true},
		{write("model.safetensors", "\x08\x00\x00\x00\x00\x00\x00\x00{}      "), false},
		{write("short", "PK"), false},
		{filepath.Join(dir, "folder.ckpt"), false},
		{filepath.Join(dir, "missing.ckpt"), false},
	}
	for _, c := range cases {
		if got := IsArchive(c.path); got != c.want {
			t.Errorf("IsArchive(%s) = %v, want %v", filepath.Base(c.path), got, c.want)
		}
	}
}

// FuzzReadLightning: any data.pkl is read or refused with an error, never a
// panic. Seeds: the pickles of the PyTorch-written DiMamba archive, of the
// synthetic checkpoint and of the reference Lightning fixtures where present
// ($MDLM_LIGHTNING_FIXTURES or ../shared/fixtures/lightning), and small
// hand-written ones.
func FuzzReadLightning(f *testing.F) {
	archives := [][]byte{syntheticCkpt(f)}
	if b, err := os.ReadFile(dimambaCkpt); err == nil {
		archives = append(archives, b)
	}
	root := os.Getenv("MDLM_LIGHTNING_FIXTURES")
	if root == "" {
		root = filepath.Join("..", "..", "shared", "fixtures", "lightning")
	}
	ckpts, _ := filepath.Glob(filepath.Join(root, "*", "*.ckpt"))
	for _, c := range ckpts {
		if b, err := os.ReadFile(c); err == nil {
			archives = append(archives, b)
		}
	}
	for _, a := range archives {
		if pkl := dataPkl(a); pkl != nil {
			f.Add(pkl)
		}
	}
	f.Add([]byte("\x80\x02}q\x00."))
	f.Add([]byte("\x80\x02}q\x00X\n\x00\x00\x00state_dictq\x01}q\x02s."))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, pkl []byte) {
		path := filepath.Join(dir, "f.ckpt")
		hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: pkl})
		Read(path) // an error is fine; a panic fails
	})
}

// dataPkl is the data.pkl of a zip archive's bytes (nil: none readable).
func dataPkl(archive []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return nil
	}
	for _, zf := range zr.File {
		if !strings.HasSuffix(zf.Name, "/data.pkl") {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return nil
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, maxPickle))
		if err != nil {
			return nil
		}
		return b
	}
	return nil
}
