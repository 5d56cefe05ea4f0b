package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/train"
)

func packedFixture(t *testing.T) string { return stagetest.PackedArtifact(t) }

func baseOptions(data, out string) Options {
	return Options{Data: data, Out: out, Model: "custom", Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Dropout: 0.1,
		Parameterization: "subs", Noise: "loglinear", Steps: 6, Batch: 4, Accum: 2, LR: 1e-3, Warmup: 2, Schedule: "constant", Clip: 1,
		EMA: 0.999, Seed: 7, LogEvery: 1, EvalEvery: 3, EvalBlocks: 8, CheckpointEvery: 2, KeepLast: 2,
		Antithetic: true, SamplingEps: 1e-3, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, LRMin: 1e-6}
}

// publish runs the stage as the command does: train in <out>.work, publish <out>.
func publish(o Options) (artifact.Manifest, error) {
	m, _, err := stage.Execute(context.Background(), stagetest.Env(), Def, &o)
	return m, err
}

func losses(t *testing.T, run string) map[int]float64 {
	t.Helper()
	ms, err := train.ReadMetrics(run)
	if err != nil {
		t.Fatal(err)
	}
	return train.Losses(ms) // a step redone after a crash overwrites the lost attempt
}

// Every flag but the output reaches the training configuration under its own
// name, and every field of the configuration but the logger and backend name
// comes from a flag.
func TestConfigMapsEveryFlag(t *testing.T) {
	var o Options
	ov := reflect.ValueOf(&o).Elem()
	for i := 0; i < ov.NumField(); i++ { // a distinct non-zero value in every field
		f := ov.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + ov.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(100 + i))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		case reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("Options.%s: unexpected kind %s", ov.Type().Field(i).Name, f.Kind())
		}
	}
	cv := reflect.ValueOf(o.config())
	for i := 0; i < ov.NumField(); i++ {
		name := ov.Type().Field(i).Name
		if name == "Out" {
			continue
		}
		got := cv.FieldByName(name)
		if !got.IsValid() || !reflect.DeepEqual(got.Interface(), ov.Field(i).Interface()) {
			t.Errorf("Config.%s = %v, want --%s's %v", name, got, name, ov.Field(i))
		}
	}
	for i := 0; i < cv.NumField(); i++ {
		name := cv.Type().Field(i).Name
		if _, ok := ov.Type().FieldByName(name); !ok && name != "Log" && name != "BackendName" {
			t.Errorf("Config.%s has no flag", name)
		}
	}
}

// A run stopped between checkpoints (as after SIGKILL) and resumed gives exactly
// the losses, weights, EMA and optimizer state of an uninterrupted run, and the
// published checkpoint/v1 artifacts are identical file for file.
func TestResumeReproducesUninterruptedRun(t *testing.T) {
	data := packedFixture(t)
	a := baseOptions(data, filepath.Join(t.TempDir(), "a"))
	ma, err := publish(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Out + stage.WorkSuffix); !os.IsNotExist(err) {
		t.Errorf("work directory left after publication: %v", err)
	}
	bo := baseOptions(data, filepath.Join(t.TempDir(), "b"))
	bo.StopAfter = 3 // dies after step 3; the last checkpoint is step 2
	if _, err := publish(bo); !errors.Is(err, train.ErrStopped) {
		t.Fatalf("stopped run: err = %v", err)
	}
	if _, err := os.Stat(bo.Out); !os.IsNotExist(err) {
		t.Fatal("an unfinished run published its output")
	}
	// A torn checkpoint left by the crash is ignored.
	os.MkdirAll(filepath.Join(bo.Out+stage.WorkSuffix, checkpoint.CheckpointsDir, ".step-00000004.tmp-123"), 0o755)
	bo.StopAfter = 0
	mb, err := publish(bo)
	if err != nil {
		t.Fatal(err)
	}
	if ma.Digest() != mb.Digest() {
		t.Errorf("resumed artifact differs from the uninterrupted one:\n%+v\n%+v", ma.Files, mb.Files)
	}
	la, lb := losses(t, a.Out), losses(t, bo.Out)
	if len(la) != 6 || !reflect.DeepEqual(la, lb) {
		t.Fatalf("losses differ:\nuninterrupted %v\nresumed       %v", la, lb)
	}
	ca, err := checkpoint.LoadTraining(a.Out)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := checkpoint.LoadTraining(bo.Out)
	if err != nil {
		t.Fatal(err)
	}
	if ca.State.Step != 6 || !reflect.DeepEqual(ca.Raw.Data, cb.Raw.Data) || !reflect.DeepEqual(ca.EMA.Data, cb.EMA.Data) ||
		!reflect.DeepEqual(ca.M, cb.M) || !reflect.DeepEqual(ca.V, cb.V) || ca.State.EMAUpdates != cb.State.EMAUpdates {
		t.Error("weights, EMA or optimizer state differ after resume")
	}
	if reflect.DeepEqual(ca.Raw.Data, ca.EMA.Data) {
		t.Error("EMA weights equal the raw weights")
	}
	if _, err := os.Stat(filepath.Join(a.Out, "loss.png")); err != nil {
		t.Errorf("no loss plot: %v", err)
	}
	if m, meta, err := artifact.Open[artifact.CheckpointMeta](a.Out); err != nil || meta.Step != 6 || m.Stage != "train" {
		t.Errorf("output as checkpoint/v1: meta %+v, err %v", meta, err)
	}
}

// The published run carries, besides its final state, the checkpoint of the
// step with the lowest validation NELBO (best/), a checkpoint/v1 of its own;
// with --gen-ppl-scorer each validation also records the generative
// perplexity of samples drawn with the EMA weights.
func TestBestCheckpointAndValidationGenPPL(t *testing.T) {
	data := packedFixture(t)
	// An AR scorer reading the same byte vocabulary.
	scfg := backbone.Config{Arch: backbone.AR, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Length: 16, MaskIndex: 258}
	sw, err := backbone.NewWeights(scfg, 9)
	if err != nil {
		t.Fatal(err)
	}
	scorer := filepath.Join(t.TempDir(), "scorer")
	if _, err := checkpoint.Save(scorer, checkpoint.Config{Model: scfg, Method: checkpoint.DefaultMethod(backbone.AR), Tokenizer: "bytes"}, sw, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	o := baseOptions(data, filepath.Join(t.TempDir(), "run"))
	o.EvalEvery, o.GenPPLScorer, o.GenPPLSamples, o.GenPPLSteps = 2, scorer, 4, 6
	if _, err := publish(o); err != nil {
		t.Fatal(err)
	}
	ms, err := train.ReadMetrics(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	bestStep, bestNLL, vals := 0, 0.0, 0
	for _, m := range ms {
		if m.ValNLL == 0 {
			continue
		}
		vals++
		if m.ValGenPPL <= 1 || m.ValEntropy <= 0 {
			t.Errorf("step %d: val_gen_ppl %v, entropy %v", m.Step, m.ValGenPPL, m.ValEntropy)
		}
		if bestStep == 0 || m.ValNLL < bestNLL {
			bestStep, bestNLL = m.Step, m.ValNLL
		}
	}
	if vals != 3 {
		t.Fatalf("%d validations, want 3", vals)
	}
	best, err := checkpoint.LoadTraining(filepath.Join(o.Out, checkpoint.BestDir))
	if err != nil {
		t.Fatal(err)
	}
	if best.State.Step != bestStep || math.Abs(best.State.BestValNLL-bestNLL) > 1e-9 {
		t.Errorf("best checkpoint at step %d (val %v), metrics say step %d (val %v)", best.State.Step, best.State.BestValNLL, bestStep, bestNLL)
	}
	if _, _, err := artifact.Open[artifact.CheckpointMeta](o.Out); err != nil {
		t.Errorf("the run with best/ inside does not verify: %v", err)
	}
}

// A run interrupted during a validation and resumed publishes exactly the
// artifact of an uninterrupted run: the resumed run validates that step first.
func TestInterruptedValidationIsRedoneOnResume(t *testing.T) {
	b, _ := backend.Shared()
	data := packedFixture(t)
	whole := baseOptions(data, filepath.Join(t.TempDir(), "whole"))
	want, err := publish(whole)
	if err != nil {
		t.Fatal(err)
	}
	o := baseOptions(data, filepath.Join(t.TempDir(), "cut"))
	o.CheckpointEvery = 100
	if _, err := stage.PrepareScratch(Def, &o); err != nil { // the marked work directory Execute makes
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := o.config()
	cfg.Log = stagetest.Env().Log
	_, err = train.Run(ctx, b, cfg, o.Out+stage.WorkSuffix, func(s, _ int, _, _ float64) {
		if s == o.EvalEvery {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	got, err := publish(o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != want.Digest() {
		t.Errorf("resumed after an interrupted validation: %s, uninterrupted %s", got.Digest(), want.Digest())
	}
}

// --backbone dimamba trains through the stage and publishes a DiMamba
// checkpoint/v1 with the reference's sizes filled in; mismatched flags are
// refused naming them (train's TestModelConfig has every case).
func TestTrainDiMambaBackbone(t *testing.T) {
	dir := t.TempDir()
	o := baseOptions(packedFixture(t), filepath.Join(dir, "run"))
	o.Backbone, o.Steps = "dimamba", 3
	if _, err := publish(o); err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if m := ck.Config.Model; m.Arch != backbone.DiMamba || m.Heads != 0 || m.DState != 16 || m.DtRank != 1 || m.Hidden != 16 {
		t.Errorf("published model %+v", m)
	}
	bad := baseOptions(o.Data, filepath.Join(dir, "bad"))
	bad.Backbone, bad.Parameterization = "dimamba", "ar"
	if _, err := publish(bad); err == nil || !strings.Contains(err.Error(), "--backbone dimamba") {
		t.Errorf("--backbone dimamba --parameterization ar: err = %v", err)
	}
	if _, err := os.Stat(bad.Out); !os.IsNotExist(err) {
		t.Errorf("a refused run published %s", bad.Out)
	}
}
