package sample

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/sampler"
)

// maskHeavyD3PMCheckpoint saves a d3pm checkpoint whose denoiser puts nearly
// all its mass on [MASK] (logit bias 60), recording obj in config.json
// (inConfig) or only in the manifest's params.objective (as checkpoints
// written before config.json recorded it).
func maskHeavyD3PMCheckpoint(t *testing.T, obj *diffusion.Objective, inConfig bool) (string, int) {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 12, MaskIndex: 258}
	w, err := backbone.NewWeights(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Data["output_layer.linear.bias"][cfg.MaskIndex] = 60
	ck := checkpoint.Config{Model: cfg, Method: checkpoint.Method{Parameterization: "d3pm", T: 1000, TimeConditioning: true, Noise: "loglinear"}, Tokenizer: "bytes"}
	man := artifact.Manifest{}
	if obj != nil && inConfig {
		ck.Objective = obj
	}
	if obj != nil && !inConfig {
		man.Params = map[string]any{diffusion.ObjectiveParam: *obj}
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := checkpoint.Save(dir, ck, w, man); err != nil {
		t.Fatal(err)
	}
	return dir, cfg.MaskIndex
}

// A d3pm checkpoint trained with --subs-masking samples as trained: whether
// config.json or (for an older checkpoint) the manifest records the switch,
// no sampled token is [MASK]; the same network without it keeps [MASK]s
// (the reference's d3pm sampler, diffusion.py: _d3pm_parameterization).
func TestSampleUsesTrainedSubsMasking(t *testing.T) {
	subs := diffusion.DefaultObjective()
	subs.SubsMasking = true
	for _, c := range []struct {
		name       string
		obj        *diffusion.Objective
		inConfig   bool
		wantMasked bool
	}{
		{"config.json", &subs, true, false},
		{"manifest only", &subs, false, false},
		{"no subs masking", nil, true, true},
	} {
		dir, mask := maskHeavyD3PMCheckpoint(t, c.obj, c.inConfig)
		out := filepath.Join(t.TempDir(), "s")
		if _, err := Run(context.Background(), nil, Options{Checkpoint: dir, Out: out, Sampler: string(sampler.DDPM), Steps: 8, Num: 2, Seed: 1,
			Eps: 1e-5, NoiseRemoval: NoiseRemovalOn}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rows, err := datasets.ReadSamples(out)
		if err != nil {
			t.Fatal(err)
		}
		masked := 0
		for _, r := range rows {
			for _, x := range r.Tokens {
				if int(x) == mask {
					masked++
				}
			}
		}
		if (masked > 0) != c.wantMasked {
			t.Errorf("%s: %d [MASK] tokens in the samples, want any: %v", c.name, masked, c.wantMasked)
		}
	}
}

// A checkpoint whose config.json and manifest record different switches is
// refused rather than sampled as either.
func TestSampleRefusesConflictingObjective(t *testing.T) {
	subs := diffusion.DefaultObjective()
	subs.SubsMasking = true
	dir, _ := maskHeavyD3PMCheckpoint(t, &subs, true)
	other := subs
	other.Antithetic = false
	man, err := artifact.Read(dir, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	// Re-publish with a manifest that disagrees.
	ck, err := checkpoint.Load(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	man.Params = map[string]any{diffusion.ObjectiveParam: other}
	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := checkpoint.Save(bad, ck.Config, ck.Weights, artifact.Manifest{Params: man.Params}); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), nil, Options{Checkpoint: bad, Out: filepath.Join(t.TempDir(), "s"), Sampler: string(sampler.DDPM), Steps: 2, Num: 1, Eps: 1e-5})
	if err == nil || !strings.Contains(err.Error(), "params.objective") {
		t.Fatalf("conflicting objectives: err = %v, want one naming params.objective", err)
	}
}
