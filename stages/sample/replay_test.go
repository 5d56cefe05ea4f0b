package sample

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/sampler"
)

var updateReplay = flag.Bool("update-replay", false, "rewrite testdata/replay from the current code")

// replayBackend is the backend the replay goldens were produced on; other
// backends (XLA) may round differently and skip the comparison.
const replayBackend = "Go Backend"

// replayCase is one command line whose samples were recorded before the
// float64 draws existed (testdata/replay, produced by sample v4).
type replayCase struct {
	name string
	opts Options
}

func replayCases(t *testing.T) []replayCase {
	dit := fixtureCheckpoint(t, "dit.safetensors")
	ar := fixtureCheckpoint(t, "ar.safetensors")
	text := bytesCheckpoint(t)
	base := Options{Checkpoint: dit, Sampler: string(sampler.RowCache), Steps: 20, Num: 3, Batch: 2, Seed: 9, Eps: 1e-5, NoiseRemoval: NoiseRemovalOn,
		DrawPrecision: string(sampler.Float32), TopP: 1, Temperature: 1, Remasking: string(sampler.RandomRemasking)}
	with := func(f func(*Options)) Options {
		o := base
		f(&o)
		return o
	}
	return []replayCase{
		{"rowcache", base},
		{"ddpm", with(func(o *Options) { o.Sampler, o.Steps, o.Num, o.Batch, o.Seed = string(sampler.DDPM), 12, 2, 0, 3 })},
		{"ddpm_cache_no_noise_removal", with(func(o *Options) { o.Sampler, o.Steps, o.NoiseRemoval = string(sampler.DDPMCache), 16, NoiseRemovalOff })},
		{"analytic", with(func(o *Options) { o.Sampler, o.Steps, o.Num, o.Batch = string(sampler.Analytic), 10, 2, 0 })},
		{"template", with(func(o *Options) { o.Template, o.Steps = "7,_,9", 10 })},
		{"length", with(func(o *Options) { o.Length, o.Sampler = 16, string(sampler.DDPM) })},
		{"semi_ar", with(func(o *Options) {
			o.Sampler, o.Steps, o.StrideLength, o.NumStrides, o.Num, o.Batch = string(sampler.DDPMCache), 10, 8, 2, 2, 0
		})},
		{"ar", with(func(o *Options) {
			o.Checkpoint, o.Sampler, o.Template, o.Num, o.Batch = ar, string(sampler.AR), "5", 2, 0
		})},
		{"text", with(func(o *Options) { o.Checkpoint, o.Template, o.Steps, o.Num, o.Batch = text, "72,105", 10, 2, 0 })},
	}
}

// bytesCheckpoint is a small DiT with the bytes tokenizer and seeded random
// weights (a non-zero output layer), so the samples have a text column.
func bytesCheckpoint(t *testing.T) string {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 12, MaskIndex: 258}
	w, err := backbone.NewWeights(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32(i%11-5) * 0.2
	}
	dir := filepath.Join(t.TempDir(), "bytes")
	if _, err := checkpoint.Save(dir, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "bytes"}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The samples of existing command lines replayed with the reference's float32
// draws are byte for byte those recorded from the code before float64 draws,
// top-p, temperature, remasking and prompts existed.
func TestReplayGolden(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != replayBackend && !*updateReplay {
		t.Skipf("the replay goldens were recorded on the %q backend, this is %q", replayBackend, b.Name())
	}
	var sums strings.Builder
	for _, c := range replayCases(t) {
		o := c.opts
		o.Out = filepath.Join(t.TempDir(), c.name)
		if _, err := Run(context.Background(), b, o); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		jsonl, err := os.ReadFile(filepath.Join(o.Out, "samples.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		parquet, err := os.ReadFile(filepath.Join(o.Out, "samples.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(parquet)
		sums.WriteString(c.name + " " + hex.EncodeToString(sum[:]) + "\n")
		golden := filepath.Join("testdata", "replay", c.name+".jsonl")
		if *updateReplay {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, jsonl, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(jsonl, want) {
			t.Errorf("%s: samples.jsonl differs from %s:\n%s", c.name, golden, jsonl)
		}
	}
	sumsFile := filepath.Join("testdata", "replay", "parquet.sha256")
	if *updateReplay {
		if err := os.WriteFile(sumsFile, []byte(sums.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(sumsFile)
	if err != nil {
		t.Fatal(err)
	}
	if sums.String() != string(want) {
		t.Errorf("samples.parquet digests differ from %s:\n%s", sumsFile, sums.String())
	}
}
