package eval

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mdlm-go/mdlm/accel"
	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/sampler"
	stsample "github.com/mdlm-go/mdlm/stages/sample"
)

func TestGenPPLWeights(t *testing.T) {
	// x = [a, EOS, b, EOS, EOS(pad)]: targets 1..4; the first EOS counts, later ones do not.
	got := GenPPLWeights([]int{7, 9, 8, 9, 9}, 9)
	if want := []float64{0, 1, 1, 0, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	if h := SampleEntropy([]int32{1, 1, 2, 3}); math.Abs(h-(-(0.5*math.Log(0.5) + 2*0.25*math.Log(0.25)))) > 1e-12 {
		t.Errorf("entropy %v", h)
	}
}

func TestGenPPLEndToEnd(t *testing.T) {
	b, _ := accel.Backend()
	dir := t.TempDir()
	mk := func(name string, arch backbone.Arch) string {
		cfg := backbone.Config{Arch: arch, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 24, MaskIndex: 258}
		w, _ := backbone.NewWeights(cfg, 5)
		for i := range w.Data["output_layer.linear.weight"] {
			w.Data["output_layer.linear.weight"][i] = float32(i%9-4) * 0.05
		}
		out := filepath.Join(dir, name)
		if _, err := checkpoint.Save(out, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(arch), Tokenizer: "bytes"}, w, artifact.Manifest{}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	dit, ar := mk("dit", backbone.DiT), mk("ar", backbone.AR)
	samples := filepath.Join(dir, "samples")
	if _, err := stsample.Run(context.Background(), b, stsample.Options{Checkpoint: dit, Out: samples, Sampler: sampler.RowCache, Steps: 8, Num: 5, Seed: 1, Eps: 1e-5, NoiseRemoval: true}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := RunGen(context.Background(), b, GenOptions{Samples: samples, Scorer: ar, Out: filepath.Join(dir, "m"), Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := stsample.ReadRows(samples)
	var h float64
	for _, r := range rows {
		h += SampleEntropy(r.Tokens) / float64(len(rows))
	}
	if res.Scored != 4 || math.IsNaN(res.GenPPL) || res.GenPPL <= 1 || math.Abs(res.Entropy-h) > 1e-12 || res.Samples != 5 {
		t.Errorf("gen ppl result %+v (entropy want %v)", res, h)
	}
	if _, err := GenPPL(context.Background(), b, samples, dit, 2); err == nil {
		t.Error("a DiT scorer was accepted")
	}
}
