package train

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/mdlm-go/mdlm/accel"
	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/stage"
)

func packedFixture(t *testing.T) string { return stagetest.PackedArtifact(t) }

func baseOptions(data, out string) Options {
	return Options{Data: data, Out: out, Model: "custom", Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Dropout: 0.1,
		Parameterization: "subs", Noise: "loglinear", Steps: 6, Batch: 4, Accum: 2, LR: 1e-3, Warmup: 2, Schedule: "constant", Clip: 1,
		EMA: 0.999, Seed: 7, LogEvery: 1, EvalEvery: 3, EvalBlocks: 8, CheckpointEvery: 2, KeepLast: 2}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Run trains in o.Out as a run directory (the stage's work directory).
func Run(ctx context.Context, b compute.Backend, o Options) (*Metrics, error) {
	return Train(ctx, b, o, quiet, o.Out)
}

// publish runs the stage as the command does: train in <out>.work, publish <out>.
func publish(o Options) (artifact.Manifest, error) {
	m, _, err := stage.Execute(context.Background(), stagetest.Env(), Def, &o)
	return m, err
}

func losses(t *testing.T, run string) map[int]float64 {
	t.Helper()
	ms, err := ReadMetrics(run)
	if err != nil {
		t.Fatal(err)
	}
	return Losses(ms) // a step redone after a crash overwrites the lost attempt
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
	if _, err := publish(bo); !errors.Is(err, ErrStopped) {
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
	if m, meta, err := artifact.Open[checkpoint.Meta](a.Out); err != nil || meta.Step != 6 || m.Stage != "train" {
		t.Errorf("output as checkpoint/v1: meta %+v, err %v", meta, err)
	}
}

// The work directory keeps the newest checkpoints, and refuses to continue a
// run with another model or seed.
func TestWorkDirectory(t *testing.T) {
	b, err := accel.Backend()
	if err != nil {
		t.Fatal(err)
	}
	data := packedFixture(t)
	o := baseOptions(data, filepath.Join(t.TempDir(), "w"))
	if _, err := Run(context.Background(), b, o); err != nil {
		t.Fatal(err)
	}
	steps, _ := filepath.Glob(filepath.Join(o.Out, checkpoint.CheckpointsDir, "step-*"))
	if len(steps) != 2 {
		t.Errorf("kept checkpoints %v, want the last 2", steps)
	}
	o.Hidden = 32
	if _, err := Run(context.Background(), b, o); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("resume with another model: err = %v", err)
	}
	o.Hidden, o.Seed = 16, 8
	if _, err := Run(context.Background(), b, o); err == nil || !strings.Contains(err.Error(), "--seed 7") {
		t.Errorf("resume with another seed: err = %v", err)
	}
}

func mustResolve(t *testing.T, run string) string {
	d, err := checkpoint.Resolve(run)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTrainRejectsBadData(t *testing.T) {
	b, _ := accel.Backend()
	dir := filepath.Join(t.TempDir(), "text")
	artifact.Publish(dir, artifact.Manifest{Type: datasets.TextType}, func(string) error { return nil })
	_, err := Run(context.Background(), b, baseOptions(dir, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), `"packed/v1"`) || !strings.Contains(err.Error(), "--data") {
		t.Errorf("text artifact as training data: err = %v", err)
	}
}

// A non-finite loss stops the run with the step, and the last good checkpoint stays.
func TestNonFiniteLossStops(t *testing.T) {
	b, _ := accel.Backend()
	o := baseOptions(packedFixture(t), filepath.Join(t.TempDir(), "nan"))
	o.LR, o.Clip, o.Warmup, o.Steps, o.CheckpointEvery, o.Accum = 1e38, 0, 0, 20, 1, 1 // parameters overflow float32
	_, runErr := Run(context.Background(), b, o)
	if !errors.Is(runErr, ErrNonFinite) || !strings.Contains(runErr.Error(), "at step") {
		t.Fatalf("err = %v, want ErrNonFinite naming the step", runErr)
	}
	last, err := checkpoint.Resolve(o.Out)
	if err != nil || last == o.Out {
		t.Fatalf("no checkpoint kept: %v", err)
	}
	if _, err := checkpoint.LoadTraining(last); err != nil {
		t.Errorf("last checkpoint unreadable: %v", err)
	}
	t.Logf("%v; kept %s", runErr, filepath.Base(last))
}

// An interrupt that lands while the validation pass of step k runs still
// checkpoints step k (the step is done) and reports context.Canceled; this was
// a race in the binary-level SIGTERM test.
func TestInterruptDuringEvalCheckpointsTheStep(t *testing.T) {
	b, _ := accel.Backend()
	o := baseOptions(packedFixture(t), filepath.Join(t.TempDir(), "int"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.CheckpointEvery = 100
	r, err := start(b, o, quiet, o.Out, func(s, _ int, _, _ float64) {
		if s == o.EvalEvery { // just before the evaluation of this step
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if _, err := r.loop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	last := mustResolve(t, o.Out)
	if filepath.Base(last) != "step-00000003" {
		t.Errorf("last checkpoint %s, want step-00000003", last)
	}
}

// A run with the linear schedule records the reference's σ bounds in its
// checkpoint config.
func TestLinearScheduleBoundsRecorded(t *testing.T) {
	o := baseOptions("", "")
	o.Noise = "linear"
	cfg, err := modelConfig(o, datasets.PackedMeta{VocabSize: 259, MaskIndex: 258, Tokenizer: "bytes"}, 16)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Method.SigmaMin != 1e-3 || cfg.Method.SigmaMax != 7 {
		t.Errorf("method %+v, want sigma_min 1e-3 and sigma_max 7", cfg.Method)
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
	ms, err := ReadMetrics(o.Out)
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
	if _, _, err := artifact.Open[checkpoint.Meta](o.Out); err != nil {
		t.Errorf("the run with best/ inside does not verify: %v", err)
	}
}

// A run interrupted during a validation and resumed publishes exactly the
// artifact of an uninterrupted run: the resumed run validates that step first.
func TestInterruptedValidationIsRedoneOnResume(t *testing.T) {
	b, _ := accel.Backend()
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
	r, err := start(b, o, quiet, o.Out+stage.WorkSuffix, func(s, _ int, _, _ float64) {
		if s == o.EvalEvery {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.loop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	r.close()
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
// refused naming them.
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
	meta := datasets.PackedMeta{VocabSize: 259, MaskIndex: 258, Tokenizer: "bytes"}
	for _, c := range []struct {
		mutate  func(*Options)
		mention string
	}{
		{func(o *Options) { o.Parameterization = "ar" }, "--backbone dimamba"},
		{func(o *Options) { o.Model = "tiny" }, "tiny-dimamba"},
		{func(o *Options) { o.Backbone, o.Model = "dit", "tiny-dimamba" }, "dimamba"},
	} {
		bad := o
		c.mutate(&bad)
		if _, err := modelConfig(bad, meta, 16); err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%+v: err = %v, want a mention of %q", c, err, c.mention)
		}
	}
}
