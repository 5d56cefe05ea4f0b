package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/optim"
	"github.com/mdlm-go/mdlm/safetensors"
)

// valNLLs are the validation NELBOs of a run's metrics, by step.
func valNLLs(t *testing.T, work string) map[int]float64 {
	t.Helper()
	ms, err := ReadMetrics(work)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]float64{}
	for _, m := range ms {
		if m.ValPPL != 0 {
			out[m.Step] = m.ValNLL
		}
	}
	return out
}

// Fine-tuning from a trained checkpoint continues its loss curve: with the
// learning rate still 0 at the first step (warmup), the first validation is
// exactly the checkpoint's last one (same weights, same seeded draws). With
// the learning rate kept near 0 (a long warmup), the first 16 steps' training
// losses are draws of the checkpoint's loss (the data's train and valid
// splits hold the same blocks): their mean lies within 4 standard errors of
// the checkpoint's last validation NELBO, the standard error combining the
// spread of the 16 losses and the validation's own single-draw error
// (measured with 8 draws per sequence, times sqrt(8)); and far below a fresh
// model's first loss.
func TestFineTuneContinuesLossCurve(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	a := baseConfig(data)
	a.Steps, a.Accum, a.Batch, a.EMA, a.Dropout, a.LR, a.Warmup, a.EvalEvery, a.EvalBlocks = 60, 1, 16, 0, 0, 3e-3, 5, 60, 0
	workA := filepath.Join(t.TempDir(), "a")
	if _, err := run(t, context.Background(), a, workA, nil); err != nil {
		t.Fatal(err)
	}
	last := valNLLs(t, workA)[60]
	const N = 16
	ft := a
	ft.Init, ft.Steps, ft.Warmup, ft.EvalEvery, ft.LR = workA, N, 10000, 1, 1e-4
	ft.Hidden, ft.Heads, ft.Blocks, ft.Cond = 0, 0, 0, 0 // the checkpoint's sizes
	workB := filepath.Join(t.TempDir(), "b")
	res, err := run(t, context.Background(), ft, workB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := valNLLs(t, workB)[1]; got != last {
		t.Errorf("fine-tuning's first validation %v, the checkpoint's last %v: the run did not start from its weights", got, last)
	}
	ftLoss := losses(t, workB)
	xs := make([]float64, 0, N)
	for k := 1; k <= N; k++ {
		xs = append(xs, ftLoss[k])
	}
	meanFT, sdFT := meanSD(xs)
	seVal := validationStderr(t, workA, data)
	tol := 4 * math.Hypot(sdFT/math.Sqrt(N), seVal)
	fresh := ft
	fresh.Init, fresh.Hidden, fresh.Heads, fresh.Blocks, fresh.Cond = "", 16, 2, 1, 8
	freshFirst := firstLoss(t, fresh)
	t.Logf("checkpoint's last val nll %.4f (single-draw se %.4f); fine-tune's first %d losses mean %.4f, sd %.4f; tolerance %.4f; a fresh model's first %.3f",
		last, seVal, N, meanFT, sdFT, tol, freshFirst)
	if math.Abs(meanFT-last) > tol {
		t.Errorf("fine-tuning's first losses average %v, not within 4 standard errors (%v) of the checkpoint's %v", meanFT, tol, last)
	}
	if freshFirst-meanFT < 2*tol {
		t.Errorf("a fresh model's first loss %v is not clearly above the fine-tune's %v", freshFirst, meanFT)
	}
	if res.InitDigest == "" || !strings.HasPrefix(res.InitDigest, "sha256:") {
		t.Errorf("init digest %q", res.InitDigest)
	}
}

// meanSD is the mean and sample standard deviation of xs.
func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

// validationStderr is the standard error of a single-draw validation NELBO of
// the checkpoint in work on data's valid split: eval's standard error at 8
// draws per sequence, times sqrt(8).
func validationStderr(t *testing.T, work, data string) float64 {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ck, err := checkpoint.Open(work)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ck.Config.Diffusion()
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := artifact.Open[artifact.PackedMeta](data)
	if err != nil {
		t.Fatal(err)
	}
	split, err := datasets.OpenPackedSplit(data, "valid", meta)
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	e := evaluate.NewEvaluator(b, m.WithObjective(diffusion.DefaultObjective()), ck.Weights.RotaryInvFreqOrDefault())
	e.MCDraws = 8
	res, err := e.Perplexity(context.Background(), ck.Weights.Tensors(), split, 16, 1, 0)
	if err != nil || res.NLLStderr == nil {
		t.Fatalf("evaluating %s: %+v, %v", work, res, err)
	}
	return *res.NLLStderr * math.Sqrt(8)
}

// firstLoss is the loss of the first step of a run of cfg.
func firstLoss(t *testing.T, cfg Config) float64 {
	t.Helper()
	cfg.Steps, cfg.EvalEvery = 1, 0
	work := filepath.Join(t.TempDir(), "first")
	if _, err := run(t, context.Background(), cfg, work, nil); err != nil {
		t.Fatal(err)
	}
	return losses(t, work)[1]
}

// --init-optimizer continues a training checkpoint exactly: its moments,
// step, EMA updates and the (seed, step) data order, so a run of 3 steps
// continued to 6 from its published checkpoint gives the losses of 6 steps
// in one run.
func TestInitOptimizerContinuesRun(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	whole := filepath.Join(t.TempDir(), "whole")
	if _, err := run(t, context.Background(), baseConfig(data), whole, nil); err != nil {
		t.Fatal(err)
	}
	first := baseConfig(data)
	first.Steps = 3
	short := filepath.Join(t.TempDir(), "short")
	if _, err := run(t, context.Background(), first, short, nil); err != nil {
		t.Fatal(err)
	}
	cont := baseConfig(data)
	cont.Init, cont.InitOptimizer = short, true
	work := filepath.Join(t.TempDir(), "cont")
	if _, err := run(t, context.Background(), cont, work, nil); err != nil {
		t.Fatal(err)
	}
	lw, lc := losses(t, whole), losses(t, work)
	for k := 4; k <= 6; k++ {
		if lw[k] != lc[k] {
			t.Errorf("step %d: continued loss %v, uninterrupted %v", k, lc[k], lw[k])
		}
	}
	if _, ok := lc[1]; ok {
		t.Errorf("continued run recorded step 1: %v", lc)
	}
	cont.Steps = 3
	if _, err := run(t, context.Background(), cont, filepath.Join(t.TempDir(), "c3"), nil); err == nil || !strings.Contains(err.Error(), "--steps 3 must be larger") {
		t.Errorf("--steps not beyond the checkpoint's: err = %v", err)
	}
}

// A run resumed after an interruption keeps its --init (the record in the work
// directory), and gives the losses of an uninterrupted fine-tune.
func TestFineTuneResumes(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	base := filepath.Join(t.TempDir(), "base")
	pre := baseConfig(data)
	pre.Steps = 2
	if _, err := run(t, context.Background(), pre, base, nil); err != nil {
		t.Fatal(err)
	}
	ft := baseConfig(data)
	ft.Init = base
	whole := filepath.Join(t.TempDir(), "whole")
	if _, err := run(t, context.Background(), ft, whole, nil); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut")
	ft.StopAfter = 3
	if _, err := run(t, context.Background(), ft, cut, nil); err == nil {
		t.Fatal("StopAfter did not stop")
	}
	ft.StopAfter = 0
	res, err := run(t, context.Background(), ft, cut, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lw, lc := losses(t, whole), losses(t, cut); !reflect.DeepEqual(lw, lc) {
		t.Errorf("resumed fine-tune's losses %v, uninterrupted %v", lc, lw)
	}
	if m, _ := artifact.Read(checkpoint.StepDir(base, 2), artifact.CheckpointType); res.InitDigest != m.Digest() {
		t.Errorf("resumed run's init digest %q, the checkpoint's %q", res.InitDigest, m.Digest())
	}
	ft.Init = filepath.Join(t.TempDir(), "other")
	copyTree(t, base, ft.Init)
	if _, err := run(t, context.Background(), ft, cut, nil); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("resume with another --init: err = %v", err)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), raw, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// packedWith publishes a packed/v1 artifact of the given vocabulary and block
// length whose train and valid splits hold n blocks of ids below the mask.
func packedWith(t *testing.T, vocab, mask, L, n int) string {
	t.Helper()
	blocks := make([][]int32, n)
	for b := range blocks {
		blocks[b] = make([]int32, L)
		for i := range blocks[b] {
			blocks[b][i] = int32((b*7+i*3)%(mask-2) + 2)
		}
	}
	meta := artifact.PackedMeta{Length: L, Mode: "wrap", Tokenizer: "bytes", VocabSize: vocab, MaskIndex: mask, BOS: 0, EOS: 1}
	return stagetest.PackedWith(t, meta, map[string][][]int32{"train": blocks, "valid": blocks})
}

// Fine-tuning from the reference's Lightning checkpoint: the run starts from
// its raw state_dict with its EMA shadow as the EMA (both bit for bit as the
// fixture's expected files), its sizes come from it, a fresh optimizer
// trains it, and its digest is the file's.
func TestFineTuneFromLightning(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range reffix.Subdirs(t, "MDLM_LIGHTNING_FIXTURES", "lightning") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var fx struct {
				Hidden int `json:"hidden_size"`
				Vocab  int `json:"vocab_size"`
				Length int `json:"length"`
			}
			raw, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			ckpts, _ := filepath.Glob(filepath.Join(dir, "*.ckpt"))
			if len(ckpts) != 1 {
				t.Fatalf("want one .ckpt in %s, found %v", dir, ckpts)
			}
			cfg := baseConfig(packedWith(t, fx.Vocab, fx.Vocab-1, fx.Length, 12))
			cfg.Init, cfg.Hidden, cfg.Heads, cfg.Blocks, cfg.Cond, cfg.Steps, cfg.EvalEvery = ckpts[0], 0, 0, 0, 0, 2, 0
			work := filepath.Join(t.TempDir(), "w")
			tr, err := start(context.Background(), b, cfg, work, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tr.ck.Model.Hidden != fx.Hidden || tr.ck.Model.Vocab != fx.Vocab {
				t.Errorf("model %+v, want the checkpoint's sizes (hidden %d, vocabulary %d)", tr.ck.Model, fx.Hidden, fx.Vocab)
			}
			compareWeights(t, "raw", tr.ck.Model, tr.state.Params, filepath.Join(dir, "expected_raw.safetensors"))
			compareWeights(t, "EMA", tr.ck.Model, tr.ema, filepath.Join(dir, "expected_ema.safetensors"))
			if tr.state.Step != 0 || tr.emaN != 0 {
				t.Errorf("step %d, EMA updates %d: want a fresh optimizer", tr.state.Step, tr.emaN)
			}
			if _, err := os.Stat(filepath.Join(work, ".init-import")); !os.IsNotExist(err) {
				t.Errorf("the import's temporary directory is left: %v", err)
			}
			tr.close()
			res, err := run(t, context.Background(), cfg, work, nil)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(res.Last.Loss) || res.Last.Loss <= 0 {
				t.Errorf("loss %v", res.Last.Loss)
			}
			if !strings.HasPrefix(res.InitDigest, "sha256:") || len(res.InitDigest) != 71 {
				t.Errorf("init digest %q, want the .ckpt's sha256", res.InitDigest)
			}
			cfg.InitOptimizer = true
			if _, err := start(context.Background(), b, cfg, filepath.Join(t.TempDir(), "o"), nil); err == nil || !strings.Contains(err.Error(), "optimizer state is not imported") {
				t.Errorf("--init-optimizer from a .ckpt: err = %v", err)
			}
		})
	}
}

// compareWeights checks tensors in the model's parameter order against a
// safetensors file, bit for bit.
func compareWeights(t *testing.T, what string, cfg backbone.Config, got []*tensors.Tensor, path string) {
	t.Helper()
	f, err := safetensors.OpenMmap(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, s := range cfg.Specs() {
		want, _, err := f.Float32(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		g, err := backbone.Float32s(got[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s %s differs from %s", what, s.Name, filepath.Base(path))
			return
		}
	}
}

// --init refuses data of another vocabulary, size flags that contradict the
// checkpoint, another backbone, and --init-optimizer without --init or from
// a checkpoint without optimizer state; it names the flag.
func TestInitRefusals(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	base := filepath.Join(t.TempDir(), "base")
	pre := baseConfig(data)
	pre.Steps = 2
	if _, err := run(t, context.Background(), pre, base, nil); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(t.TempDir(), "bare")
	w, _ := backbone.NewWeights(backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 16, MaskIndex: 258}, 1)
	if _, err := checkpoint.Save(bare, checkpoint.Config{Model: w.Config, Method: checkpoint.DefaultMethod(backbone.DiT)}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"vocabulary", func(c *Config) { c.Data = packedWith(t, 300, 299, 16, 4) }, "vocabulary has 259 tokens"},
		{"hidden", func(c *Config) { c.Hidden = 32 }, "--hidden 32: the --init checkpoint has 16"},
		{"preset", func(c *Config) { c.Model = "tiny" }, "--model tiny"},
		{"backbone", func(c *Config) { c.Backbone = "dimamba" }, "--backbone dimamba"},
		{"ar", func(c *Config) { c.Parameterization = "ar" }, "--parameterization ar"},
		{"optimizer without init", func(c *Config) { c.Init, c.InitOptimizer = "", true }, "give --init"},
		{"optimizer of a bare checkpoint", func(c *Config) { c.Init, c.InitOptimizer = bare, true }, "needs a training checkpoint"},
		{"missing", func(c *Config) { c.Init = filepath.Join(t.TempDir(), "none") }, "--init"},
		{"not a checkpoint", func(c *Config) { c.Init = filepath.Join(data, "train.arrow") }, "neither a checkpoint directory"},
	}
	for _, c := range cases {
		cfg := baseConfig(data)
		cfg.Init = base
		c.mutate(&cfg)
		_, err := run(t, context.Background(), cfg, filepath.Join(t.TempDir(), "w"), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// --valid-data validates on another artifact's valid split (its digest is
// the result's), which must be tokenized as --data and of the model's length.
func TestValidData(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	other := stagetest.PackedBlocks(t, map[string][][]int32{"train": {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
		"valid": {{65, 66, 67, 68, 65, 66, 67, 68, 65, 66, 67, 68, 65, 66, 67, 68}, {97, 98, 99, 100, 97, 98, 99, 100, 97, 98, 99, 100, 97, 98, 99, 100}}})
	cfg := baseConfig(data)
	cfg.Steps, cfg.EvalEvery = 3, 3
	own := filepath.Join(t.TempDir(), "own")
	if _, err := run(t, context.Background(), cfg, own, nil); err != nil {
		t.Fatal(err)
	}
	cfg.ValidData = other
	sep := filepath.Join(t.TempDir(), "sep")
	res, err := run(t, context.Background(), cfg, sep, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := artifact.Read(other, artifact.PackedType)
	if res.ValidDigest != m.Digest() {
		t.Errorf("valid digest %q, want --valid-data's %q", res.ValidDigest, m.Digest())
	}
	if a, b := valNLLs(t, own)[3], valNLLs(t, sep)[3]; a == b || b == 0 {
		t.Errorf("validation on --valid-data gave %v, on --data %v: want another split's value", b, a)
	}
	if lo, ls := losses(t, own), losses(t, sep); !reflect.DeepEqual(lo, ls) {
		t.Errorf("--valid-data changed the training losses: %v vs %v", ls, lo)
	}
	for _, c := range []struct {
		valid, want string
	}{
		{packedWith(t, 300, 299, 16, 2), "tokenized as the training data"},
		{stagetest.PackedBlocks(t, map[string][][]int32{"train": {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}}), "--valid-data"},
		{packedWith(t, 259, 258, 8, 2), "pack the validation data with --length 16"},
	} {
		cfg.ValidData = c.valid
		if _, err := run(t, context.Background(), cfg, filepath.Join(t.TempDir(), "w"), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--valid-data %s: err = %v, want %q", c.valid, err, c.want)
		}
	}
}

// --random-crop trains a model of half the blocks' length on crops seeded by
// (seed, step) (a resumed run crops alike), for diffusion and AR models, and
// records it in the objective; odd block lengths are refused.
func TestRandomCrop(t *testing.T) {
	data := stagetest.PackedArtifact(t) // blocks of 16: a model of 8
	for _, param := range []string{"subs", "ar"} {
		cfg := baseConfig(data)
		cfg.RandomCrop, cfg.Parameterization, cfg.Steps = true, param, 4
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		res, err := run(t, context.Background(), cfg, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, context.Background(), cfg, b, nil); err != nil {
			t.Fatal(err)
		}
		if la, lb := losses(t, a), losses(t, b); !reflect.DeepEqual(la, lb) || len(la) != 4 {
			t.Errorf("%s: crops are not a function of (seed, step): %v vs %v", param, la, lb)
		}
		if res.t.ck.Model.Length != 8 || !res.Objective.RandomCrop {
			t.Errorf("%s: model length %d, objective %+v", param, res.t.ck.Model.Length, res.Objective)
		}
	}
	cfg := baseConfig(packedWith(t, 40, 39, 15, 4))
	cfg.RandomCrop = true
	if _, err := run(t, context.Background(), cfg, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "--random-crop") {
		t.Errorf("odd blocks: err = %v", err)
	}
}

// Every switch reaches the step and the objective: AdamW's betas and eps,
// the cosine floor, the time sampling and the loss; the checkpoints of the
// work directory record a non-default objective in their manifests.
func TestSwitchesReachTheRun(t *testing.T) {
	b, _ := backend.Shared()
	data := stagetest.PackedArtifact(t)
	cfg := baseConfig(data)
	cfg.Beta1, cfg.Beta2, cfg.AdamEps, cfg.LRMin, cfg.Schedule = 0.8, 0.95, 1e-6, 1e-5, "cosine"
	cfg.Antithetic, cfg.SamplingEps, cfg.ImportanceSampling = false, 0.01, true
	work := filepath.Join(t.TempDir(), "w")
	tr, err := start(context.Background(), b, cfg, work, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.step.Opt != (optim.AdamW{LR: cfg.LR, Beta1: 0.8, Beta2: 0.95, Eps: 1e-6}) {
		t.Errorf("AdamW %+v", tr.step.Opt)
	}
	if cw, ok := tr.step.LR.(optim.CosineWarmup); !ok || cw.Min != 1e-5 {
		t.Errorf("LR schedule %+v, want cosine with floor 1e-5", tr.step.LR)
	}
	want := diffusion.Objective{SamplingEps: 0.01, ImportanceSampling: true}
	if got := tr.model.Objective(); got != want {
		t.Errorf("objective %+v, want %+v", got, want)
	}
	tr.close()
	if _, err := run(t, context.Background(), cfg, work, nil); err != nil {
		t.Fatal(err)
	}
	last, _ := checkpoint.Resolve(work)
	m, err := artifact.Read(last, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := diffusion.ObjectiveFromParams(m.Params); err != nil || got != want {
		t.Errorf("checkpoint records objective %+v (err %v), want %+v", got, err, want)
	}
	for _, c := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.SamplingEps = 0 }, "--sampling-eps 0"},
		{func(c *Config) { c.ChangeOfVariables = true }, "cannot both be set"},
		{func(c *Config) { c.Noise = "cosine" }, "--noise cosine"},
		{func(c *Config) { c.ImportanceSampling, c.SubsMasking = false, true }, "--subs-masking"},
		{func(c *Config) { c.Beta2 = 1 }, "beta2"},
		{func(c *Config) { c.LRMin = 1 }, "--lr-min"},
	} {
		bad := cfg
		c.mutate(&bad)
		if _, err := run(t, context.Background(), bad, filepath.Join(t.TempDir(), "bad"), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

// --init hub:org/name@rev loads the checkpoint the hub reference names from the
// hub cache (as eval's --checkpoint does; pulled only when missing, so no
// network here: the endpoint is unreachable), takes its sizes, and records its
// digest as the run's init digest.
func TestFineTuneFromHub(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	base := filepath.Join(t.TempDir(), "base")
	pre := baseConfig(data)
	pre.Steps = 2
	if _, err := run(t, context.Background(), pre, base, nil); err != nil {
		t.Fatal(err)
	}
	src, err := checkpoint.Resolve(base)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	t.Setenv("MDLM_CACHE", cache)
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	if err := os.CopyFS(filepath.Join(cache, "checkpoints", "org--tiny@v1"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	ft := baseConfig(data)
	ft.Init, ft.Hidden, ft.Heads, ft.Blocks, ft.Cond, ft.Steps = "hub:org/tiny@v1", 0, 0, 0, 0, 2
	res, err := run(t, context.Background(), ft, filepath.Join(t.TempDir(), "ft"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := artifact.Read(src, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	if res.InitDigest != m.Digest() {
		t.Errorf("init digest %q, want the hub checkpoint's %q", res.InitDigest, m.Digest())
	}
	if math.IsNaN(res.Last.Loss) || res.Last.Loss <= 0 {
		t.Errorf("loss %v", res.Last.Loss)
	}
}
