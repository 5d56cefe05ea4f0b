package eval

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

// maskHeavyD3PM saves a d3pm checkpoint whose denoiser puts nearly all its
// mass on [MASK] (logit bias 60), recording obj as the train stage does: in
// config.json and in the manifest's params.objective.
func maskHeavyD3PM(t *testing.T, obj *diffusion.Objective) string {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 16, MaskIndex: 258}
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	w.Data["output_layer.linear.bias"][cfg.MaskIndex] = 60
	ck := checkpoint.Config{Model: cfg, Method: checkpoint.Method{Parameterization: "d3pm", T: 1000, TimeConditioning: true, Noise: "loglinear"},
		Tokenizer: "bytes", Objective: obj}
	man := artifact.Manifest{}
	if obj != nil {
		man.Params = map[string]any{diffusion.ObjectiveParam: *obj}
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := checkpoint.Save(dir, ck, w, man); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Eval of a d3pm checkpoint trained with --subs-masking evaluates that
// objective: with [MASK] excluded from the softmax (diffusion.py:
// _d3pm_parameterization) the NELBO of a network that favours [MASK] is
// several times lower than without subs masking.
func TestEvalUsesTrainedSubsMasking(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	subs := diffusion.DefaultObjective()
	subs.SubsMasking = true
	nll := func(obj *diffusion.Objective) float64 {
		out := filepath.Join(t.TempDir(), "m")
		if _, err := stagetest.Run(context.Background(), Def, &Options{Checkpoint: maskHeavyD3PM(t, obj), Data: data, Out: out,
			Split: "valid", Batch: 4, Seed: 1, T: -1, MaxBlocks: 4}); err != nil {
			t.Fatal(err)
		}
		var res evaluate.Perplexity
		raw, _ := os.ReadFile(filepath.Join(out, evaluate.MetricsJSON))
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		return res.NLL
	}
	with, without := nll(&subs), nll(nil)
	if !(with > 0 && without > 4*with) {
		t.Errorf("NELBO with subs masking %g, without %g: want the second far above the first", with, without)
	}
}
