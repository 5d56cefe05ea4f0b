package train_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/stages"
)

// optionsPipeline uses every option of issue 23 as a `with:` key: pack's
// no-eos; train's init (a file, hashed into the key), init-optimizer,
// valid-data (an input), the reference's switches, AdamW's and the cosine
// floor; eval's mc-draws; sample's top-p, temperature, draw-precision,
// remasking, noise-removal, prefix, suffix and prompts.
const optionsPipeline = `version: 1
name: options
vars: {is: true}
stages:
  text: {run: download, with: {sources: [SRC], hold-out: 1}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: 16, no-eos: true}}
  model:
    run: train
    inputs: {data: blocks, valid: blocks}
    with: {init: INIT, init-optimizer: true, steps: 4, importance-sampling: "${is}", antithetic: false, sampling-eps: 0.01,
           beta1: 0.8, beta2: 0.99, adam-eps: 1e-6, schedule: cosine, lr-min: 1e-5, random-crop: true}
  cov: {run: train, inputs: {data: blocks}, with: {change-of-variables: true}}
  d3pm: {run: train, inputs: {data: blocks}, with: {parameterization: d3pm, T: 1000, subs-masking: true}}
  ppl: {run: eval, inputs: {model: model, data: blocks}, with: {mc-draws: 8}}
  samples:
    run: sample
    inputs: {model: model}
    with: {top-p: 0.9, temperature: 0.8, draw-precision: float32, remasking: low-confidence,
           noise-removal: greedy, prefix: "In the", suffix: "."}
  prompted: {run: sample, inputs: {model: model}, with: {prompts: PROMPTS}}
`

// planOptions writes optionsPipeline with its files in dir and plans it.
func planOptions(t *testing.T, dir string, overrides map[string]string) map[string]pipeline.Decision {
	t.Helper()
	body := strings.NewReplacer("SRC", filepath.Join(dir, "c.txt"), "INIT", filepath.Join(dir, "init.ckpt"),
		"PROMPTS", filepath.Join(dir, "prompts.jsonl")).Replace(optionsPipeline)
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := pipeline.Load(file, overrides, stages.Registry())
	if err != nil {
		t.Fatal(err)
	}
	e := &pipeline.Engine{CacheDir: filepath.Join(dir, "cache")}
	ds, err := e.Plan(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]pipeline.Decision{}
	for _, d := range ds {
		out[d.Stage] = d
	}
	return out
}

// A pipeline giving each option under `with:` plans, passes each to its
// stage's command line, and keys it: another value of a switch, or other
// bytes in the --init checkpoint, is another cache key.
func TestOptionsAsPipelineKeys(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"c.txt": "In the beginning\n", "init.ckpt": "checkpoint one",
		"prompts.jsonl": `{"prefix": "In"}` + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ds := planOptions(t, dir, nil)
	want := map[string][]string{
		"blocks":   {"--no-eos"},
		"model":    {"--init-optimizer", "--importance-sampling", "--antithetic=false", "--sampling-eps=0.01", "--beta1=0.8", "--beta2=0.99", "--adam-eps=1e-06", "--lr-min=1e-05", "--random-crop", "--valid-data="},
		"cov":      {"--change-of-variables"},
		"d3pm":     {"--subs-masking", "--T=1000"},
		"ppl":      {"--mc-draws=8"},
		"samples":  {"--top-p=0.9", "--temperature=0.8", "--draw-precision=float32", "--remasking=low-confidence", "--noise-removal=greedy", "--prefix=In the", "--suffix=."},
		"prompted": {"--prompts="},
	}
	for stage, flags := range want {
		d, ok := ds[stage]
		if !ok {
			t.Fatalf("stage %s not planned: %v", stage, ds)
		}
		for _, f := range flags {
			if !slices.ContainsFunc(d.Args, func(a string) bool { return a == f || strings.HasSuffix(f, "=") && strings.HasPrefix(a, f) }) {
				t.Errorf("%s: no %s in %q", stage, f, d.Args)
			}
		}
	}
	if !slices.ContainsFunc(ds["model"].Args, func(a string) bool { return strings.HasPrefix(a, "--init=") }) {
		t.Errorf("model: no --init in %q", ds["model"].Args)
	}
	if other := planOptions(t, dir, map[string]string{"is": "false"}); other["model"].Key == ds["model"].Key {
		t.Error("--importance-sampling true and false give one cache key")
	}
	if err := os.WriteFile(filepath.Join(dir, "init.ckpt"), []byte("checkpoint two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if other := planOptions(t, dir, nil); other["model"].Key == ds["model"].Key {
		t.Error("another --init checkpoint gives the same cache key")
	}
}
