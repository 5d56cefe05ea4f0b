package genppl

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

func TestGenPPLEndToEnd(t *testing.T) {
	b, _ := backend.Shared()
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
	texts := []string{"In the beginning", "God created the heaven", "and the earth<|endoftext|>", "x", "And the earth was without form"}
	var rows []datasets.Sample
	for i, txt := range texts {
		var ids []int32
		for _, c := range []byte(txt) {
			ids = append(ids, int32(c))
		}
		rows = append(rows, datasets.Sample{Index: int64(i), Tokens: ids, NFE: 3, Text: txt})
	}
	_, err := artifact.Publish(samples, artifact.Manifest{Type: artifact.SamplesType,
		Params: artifact.Params(artifact.SamplesMeta{Sampler: "ddpm", Num: len(rows), Length: 24})},
		func(tmp string) error { return datasets.WriteSamples(tmp, rows) })
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m")
	m, err := stagetest.Run(context.Background(), Def, &Options{Samples: samples, Scorer: ar, Out: out, Batch: 2, Context: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != artifact.MetricsType || m.Inputs["scorer"] == "" || m.Inputs["samples"] == "" {
		t.Errorf("manifest %+v", m)
	}
	var res evaluate.GenResult
	raw, _ := os.ReadFile(filepath.Join(out, evaluate.MetricsJSON))
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	var h float64
	for _, r := range rows {
		h += evaluate.SampleEntropy(r.Tokens) / float64(len(rows))
	}
	if res.Scored != 4 || math.IsNaN(res.GenPPL) || res.GenPPL <= 1 || math.Abs(res.Entropy-h) > 1e-12 || res.Samples != 5 {
		t.Errorf("gen ppl result %+v (entropy want %v)", res, h)
	}
	ck, err := checkpoint.Open(dit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evaluate.NewScorer(b, ck.Config.Model, ck.ForInference(), ck.Config.Tokenizer); err == nil || !strings.Contains(err.Error(), "want gpt2 or ar") {
		t.Errorf("a DiT scorer: err = %v", err)
	}
}

// TestHostileGenPPLNonFinite guards issue 19, defect 10: a metric JSON cannot
// carry fails the stage with the metric named, never "json: unsupported value".
func TestHostileGenPPLNonFinite(t *testing.T) {
	cases := []struct {
		res  evaluate.GenResult
		want string
	}{
		{evaluate.GenResult{GenPPL: 40, Scored: 4, Tokens: 30, Entropy: 2}, ""},
		{evaluate.GenResult{GenPPL: math.Inf(1), Scored: 4, Tokens: 30, Entropy: 2}, "gen_ppl is +Inf over 4 scored samples"},
		{evaluate.GenResult{GenPPL: math.NaN(), Scored: 4, Tokens: 30, Entropy: 2}, "gen_ppl is NaN"},
	}
	for _, c := range cases {
		err := checkFinite(c.res)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: err = %v, want %q", c.res, err, c.want)
		}
	}
}
