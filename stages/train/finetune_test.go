package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
	evalstage "github.com/mdlm-go/mdlm/stages/eval"
)

// defaultSizes are baseOptions with the size flags at their flag defaults,
// as a command line without them gives.
func defaultSizes(o Options) Options {
	o.Backbone, o.Model, o.Hidden, o.Heads, o.Blocks, o.Cond = "dit", "custom", 128, 4, 2, 64
	return o
}

// Through the stage, --init takes the checkpoint's sizes when the size flags
// are left at their defaults (a 16-wide model here, against the defaults'
// 128), and the published manifest names the checkpoint and --valid-data by
// digest among its inputs; a default run's inputs are the data alone.
func TestStageFineTune(t *testing.T) {
	data := packedFixture(t)
	base := baseOptions(data, filepath.Join(t.TempDir(), "base"))
	base.Steps = 2
	bm, err := publish(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(bm.Inputs) != 1 || bm.Params[diffusion.ObjectiveParam] != nil {
		t.Errorf("default run: inputs %v, params %v", bm.Inputs, bm.Params)
	}
	ft := defaultSizes(baseOptions(data, filepath.Join(t.TempDir(), "ft")))
	ft.Init, ft.ValidData, ft.Steps = base.Out, data, 3
	m, err := publish(ft)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(ft.Out)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Config.Model.Hidden != 16 || ck.Config.Model.Blocks != 1 {
		t.Errorf("fine-tuned model %+v, want the --init checkpoint's sizes", ck.Config.Model)
	}
	pm, _ := artifact.Read(data, "")
	if m.Inputs["init"] != bm.Digest() || m.Inputs["valid"] != pm.Digest() || m.Inputs["data"] != pm.Digest() {
		t.Errorf("inputs %v, want init %s, valid and data %s", m.Inputs, bm.Digest(), pm.Digest())
	}
	if _, err := os.Stat(ft.Out + stage.WorkSuffix); !os.IsNotExist(err) {
		t.Errorf("work directory left: %v", err)
	}
	bad := defaultSizes(baseOptions(data, filepath.Join(t.TempDir(), "bad")))
	bad.Init, bad.Hidden = base.Out, 32
	if _, err := publish(bad); err == nil {
		t.Error("--hidden 32 against a 16-wide --init checkpoint was accepted")
	}
}

// A run with non-default switches records them in its manifest, and eval of
// the published checkpoint evaluates with them: its NELBO is that of the
// importance-sampled objective, not the reference default's.
func TestObjectiveRecordedAndEvaluated(t *testing.T) {
	data := packedFixture(t)
	o := baseOptions(data, filepath.Join(t.TempDir(), "is"))
	o.ImportanceSampling, o.Steps = true, 3
	m, err := publish(o)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := diffusion.ObjectiveFromParams(m.Params)
	if err != nil || !obj.ImportanceSampling || !obj.Antithetic {
		t.Fatalf("recorded objective %+v, err %v", obj, err)
	}
	best, _ := artifact.Read(filepath.Join(o.Out, checkpoint.BestDir), "")
	if got, _ := diffusion.ObjectiveFromParams(best.Params); got != obj {
		t.Errorf("best/ records %+v, the run %+v", got, obj)
	}
	// The same EMA weights saved without the record (in neither config.json
	// nor the manifest): the reference's objective.
	ck, err := checkpoint.Open(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Config.Objective == nil || *ck.Config.Objective != obj {
		t.Errorf("config.json records %+v, the manifest %+v", ck.Config.Objective, obj)
	}
	cfg := ck.Config
	cfg.Objective = nil
	plain := filepath.Join(t.TempDir(), "plain")
	if _, err := checkpoint.Save(plain, cfg, ck.EMA, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	nll := func(ckpt string) float64 {
		out := filepath.Join(t.TempDir(), "m")
		if _, err := stagetest.Run(context.Background(), evalstage.Def, &evalstage.Options{Checkpoint: ckpt, Data: data, Out: out,
			Split: "valid", Batch: 4, Seed: 1, T: -1, MaxBlocks: 8}); err != nil {
			t.Fatal(err)
		}
		var res evaluate.Perplexity
		raw, _ := os.ReadFile(filepath.Join(out, evaluate.MetricsJSON))
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		return res.NLL
	}
	if a, b := nll(o.Out), nll(plain); a == b {
		t.Errorf("eval gives %v with and without the recorded importance sampling", a)
	}
}
