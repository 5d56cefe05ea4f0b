package train

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// baseConfig is a small, fast run: 6 steps of 2 micro-batches, validating
// every 3 steps, checkpointing every 2.
func baseConfig(data string) Config {
	return Config{Data: data, Model: "custom", Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Dropout: 0.1,
		Parameterization: "subs", Noise: "loglinear", Steps: 6, Batch: 4, Accum: 2, LR: 1e-3, Warmup: 2, Schedule: "constant", Clip: 1,
		EMA: 0.999, Seed: 7, LogEvery: 1, EvalEvery: 3, EvalBlocks: 8, CheckpointEvery: 2, KeepLast: 2, Log: quiet,
		Antithetic: true, SamplingEps: 1e-3, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, LRMin: 1e-6}
}

// run trains cfg in work with the default backend.
func run(t *testing.T, ctx context.Context, cfg Config, work string, progress Progress) (*Result, error) {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return Run(ctx, b, cfg, work, progress)
}

func losses(t *testing.T, work string) map[int]float64 {
	t.Helper()
	ms, err := ReadMetrics(work)
	if err != nil {
		t.Fatal(err)
	}
	return Losses(ms) // a step redone after a crash overwrites the lost attempt
}

// The work directory keeps the newest checkpoints, and refuses to continue a
// run with another model or seed.
func TestWorkDirectory(t *testing.T) {
	cfg, work := baseConfig(stagetest.PackedArtifact(t)), filepath.Join(t.TempDir(), "w")
	res, err := run(t, context.Background(), cfg, work, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 6 || res.Last.Step != 6 || res.DataDigest == "" {
		t.Errorf("result: step %d, last %+v, data digest %q", res.Step, res.Last, res.DataDigest)
	}
	steps, _ := filepath.Glob(filepath.Join(work, checkpoint.CheckpointsDir, "step-*"))
	if len(steps) != 2 {
		t.Errorf("kept checkpoints %v, want the last 2", steps)
	}
	cfg.Hidden = 32
	if _, err := run(t, context.Background(), cfg, work, nil); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("resume with another model: err = %v", err)
	}
	cfg.Hidden, cfg.Seed = 16, 8
	if _, err := run(t, context.Background(), cfg, work, nil); err == nil || !strings.Contains(err.Error(), "--seed 7") {
		t.Errorf("resume with another seed: err = %v", err)
	}
}

// A run stopped by StopAfter reports ErrStopped with the step; continued in
// the same work directory, it gives the losses of an uninterrupted run.
func TestStopAfterAndResume(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	whole := filepath.Join(t.TempDir(), "whole")
	if _, err := run(t, context.Background(), baseConfig(data), whole, nil); err != nil {
		t.Fatal(err)
	}
	cfg, cut := baseConfig(data), filepath.Join(t.TempDir(), "cut")
	cfg.StopAfter = 3
	res, err := run(t, context.Background(), cfg, cut, nil)
	if !errors.Is(err, ErrStopped) || res != nil || !strings.Contains(err.Error(), "stopped at step 3 of 6") {
		t.Fatalf("stopped run: result %v, err = %v", res, err)
	}
	cfg.StopAfter = 0
	if _, err := run(t, context.Background(), cfg, cut, nil); err != nil {
		t.Fatal(err)
	}
	if la, lb := losses(t, whole), losses(t, cut); len(la) != 6 || !reflect.DeepEqual(la, lb) {
		t.Errorf("losses differ:\nuninterrupted %v\nresumed       %v", la, lb)
	}
}

func TestTrainRejectsBadData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "text")
	artifact.Publish(dir, artifact.Manifest{Type: artifact.TextType}, func(string) error { return nil })
	_, err := run(t, context.Background(), baseConfig(dir), t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), `"packed/v1"`) || !strings.Contains(err.Error(), "--data") {
		t.Errorf("text artifact as training data: err = %v", err)
	}
}

// A non-finite loss stops the run with the step, and the last good checkpoint stays.
func TestNonFiniteLossStops(t *testing.T) {
	cfg, work := baseConfig(stagetest.PackedArtifact(t)), filepath.Join(t.TempDir(), "nan")
	cfg.LR, cfg.Clip, cfg.Warmup, cfg.Steps, cfg.CheckpointEvery, cfg.Accum = 1e38, 0, 0, 20, 1, 1 // parameters overflow float32
	_, runErr := run(t, context.Background(), cfg, work, nil)
	if !errors.Is(runErr, ErrNonFinite) || !strings.Contains(runErr.Error(), "at step") {
		t.Fatalf("err = %v, want ErrNonFinite naming the step", runErr)
	}
	last, err := checkpoint.Resolve(work)
	if err != nil || last == work {
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
	cfg, work := baseConfig(stagetest.PackedArtifact(t)), filepath.Join(t.TempDir(), "int")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.CheckpointEvery = 100
	_, err := run(t, ctx, cfg, work, func(s, _ int, _, _ float64) {
		if s == cfg.EvalEvery { // just before the evaluation of this step
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	last, err := checkpoint.Resolve(work)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(last) != "step-00000003" {
		t.Errorf("last checkpoint %s, want step-00000003", last)
	}
}

// modelConfig builds the checkpoint configuration from the run's flags: the
// linear schedule records the reference's σ bounds, DiMamba gets the
// reference's sizes, and mismatched flags are refused naming them.
func TestModelConfig(t *testing.T) {
	meta := artifact.PackedMeta{VocabSize: 259, MaskIndex: 258, Tokenizer: "bytes"}
	cases := []struct {
		name    string
		mutate  func(*Config)
		check   func(checkpoint.Config) bool
		mention string // in the error; "" when the configuration is valid
	}{
		{"linear schedule bounds", func(c *Config) { c.Noise = "linear" },
			func(ck checkpoint.Config) bool { return ck.Method.SigmaMin == 1e-3 && ck.Method.SigmaMax == 7 }, ""},
		{"custom dimamba", func(c *Config) { c.Backbone = "dimamba" },
			func(ck checkpoint.Config) bool {
				m := ck.Model
				return m.Heads == 0 && m.DState == 16 && m.DtRank == 1 && m.Hidden == 16
			}, ""},
		{"dimamba ar", func(c *Config) { c.Backbone, c.Parameterization = "dimamba", "ar" }, nil, "--backbone dimamba"},
		{"dimamba tiny", func(c *Config) { c.Backbone, c.Model = "dimamba", "tiny" }, nil, "tiny-dimamba"},
		{"dit tiny-dimamba", func(c *Config) { c.Backbone, c.Model = "dit", "tiny-dimamba" }, nil, "dimamba"},
	}
	for _, c := range cases {
		cfg := baseConfig("")
		c.mutate(&cfg)
		ck, err := modelConfig(cfg, meta, 16, nil)
		if c.mention != "" {
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("%s: err = %v, want a mention of %q", c.name, err, c.mention)
			}
			continue
		}
		if err != nil || !c.check(ck) {
			t.Errorf("%s: config %+v / %+v, err %v", c.name, ck.Model, ck.Method, err)
		}
	}
}

// TestHostileTrainNonFiniteValidation: validation metrics JSON cannot carry stop
// the run with the metric named instead of vanishing from metrics.jsonl.
func TestHostileTrainNonFiniteValidation(t *testing.T) {
	cases := []struct {
		m    Metrics
		want string
	}{
		{Metrics{Step: 3, ValNLL: 2, ValPPL: 7.4}, ""},
		{Metrics{Step: 3, ValNLL: 800, ValPPL: math.Inf(1)}, "val_ppl is +Inf"},
		{Metrics{Step: 3, ValNLL: math.NaN(), ValPPL: math.NaN()}, "val_nll is NaN"},
		{Metrics{Step: 3, ValNLL: 2, ValPPL: 7.4, ValGenPPL: math.NaN()}, "val_gen_ppl is NaN"},
	}
	for _, c := range cases {
		err := checkFinite(c.m)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: err = %v, want %q", c.m, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrNonFinite) {
			t.Errorf("%+v: err = %v, want ErrNonFinite", c.m, err)
		}
	}
}
