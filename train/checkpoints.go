package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/filehash"
)

// restoreOrInit continues from the work directory's last checkpoint, if it has
// one, or starts from src (--init), or initialises the weights.
func (t *trainer) restoreOrInit(src *initSource) error {
	last, _ := checkpoint.Resolve(t.work)
	if last != t.work {
		return t.restore(last)
	}
	if src != nil {
		return t.initFrom(src)
	}
	w, err := backbone.NewWeights(t.ck.Model, uint64(t.cfg.Seed))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.invFreq = w.RotaryInvFreqOrDefault()
	t.state, err = NewStateOn(t.b, w, t.cfg.Seed, dtypes.Float32)
	if err != nil {
		return err
	}
	t.ema = w.Tensors()
	return nil
}

// restore loads the training checkpoint last, refusing one of another model,
// objective or seed.
func (t *trainer) restore(last string) error {
	tr, err := checkpoint.LoadTraining(last)
	if err != nil {
		return fmt.Errorf("train: resume from %s: %w", last, err)
	}
	if tr.Config.Model != t.ck.Model || tr.Config.Method != t.ck.Method {
		return fmt.Errorf("train: %s holds a run of model %+v / %+v, the options give %+v / %+v: remove it to start over",
			t.work, tr.Config.Model, tr.Config.Method, t.ck.Model, t.ck.Method)
	}
	if tr.Config.Objective != nil && tr.Config.TrainedObjective() != t.ck.TrainedObjective() {
		return fmt.Errorf("train: %s holds a run with the switches %+v, the options give %+v: remove it to start over",
			t.work, tr.Config.TrainedObjective(), t.ck.TrainedObjective())
	}
	if tr.State.Seed != t.cfg.Seed {
		return fmt.Errorf("train: %s holds a run with --seed %d, not %d: remove it to start over", t.work, tr.State.Seed, t.cfg.Seed)
	}
	t.invFreq = tr.Raw.RotaryInvFreqOrDefault()
	if t.state, err = stateFromTraining(t.b, tr, t.ck.Model, t.cfg.Seed); err != nil {
		return fmt.Errorf("train: resume from %s: %w", last, err)
	}
	t.ema, t.emaN = tr.EMA.Tensors(), tr.State.EMAUpdates
	t.bestStep, t.bestNLL, t.validated = tr.State.BestStep, tr.State.BestValNLL, tr.State.ValidatedStep
	t.log.Info("resumed", "checkpoint", last, "step", tr.State.Step)
	return nil
}

// snapshot is the current training state as a checkpoint.
func (t *trainer) snapshot() (checkpoint.Training, error) {
	toWeights := func(ts []*tensors.Tensor) (*backbone.Weights, error) {
		w := &backbone.Weights{Config: t.ck.Model, Data: map[string][]float32{}, InvFreq: t.invFreq}
		return w, w.SetFromTensors(ts)
	}
	var tr checkpoint.Training
	raw, err := toWeights(t.state.Params)
	if err != nil {
		return tr, err
	}
	ema, err := toWeights(t.emaOrParams())
	if err != nil {
		return tr, err
	}
	mm, vv := map[string][]float32{}, map[string][]float32{}
	for i, s := range t.ck.Model.Specs() {
		if mm[s.Name], err = backbone.Float32s(t.state.M[i]); err != nil {
			return tr, err
		}
		if vv[s.Name], err = backbone.Float32s(t.state.V[i]); err != nil {
			return tr, err
		}
	}
	return checkpoint.Training{Config: t.ck, Raw: raw, EMA: ema, M: mm, V: vv,
		State: checkpoint.TrainState{Step: t.state.Step, Seed: t.cfg.Seed, EMAUpdates: t.emaN, BestStep: t.bestStep, BestValNLL: t.bestNLL, ValidatedStep: t.validated}}, nil
}

// checkpointParams adds to a checkpoint's manifest params the switches it was
// trained with, when they are not the reference's defaults (so that eval of a
// work directory or of best/ does what training did; default runs keep their
// manifests).
func (t *trainer) checkpointParams(params map[string]any) map[string]any {
	if o := t.objective(); !o.IsDefault() {
		params[diffusion.ObjectiveParam] = o
	}
	return params
}

// save publishes a checkpoint of the current step in the work directory and
// marks it last.
func (t *trainer) save() error {
	tr, err := t.snapshot()
	if err != nil {
		return err
	}
	dir := checkpoint.StepDir(t.work, t.state.Step)
	if _, err := checkpoint.SaveTraining(dir, tr, artifact.Manifest{Stage: "train", Backend: t.cfg.BackendName,
		Params: t.checkpointParams(map[string]any{"step": t.state.Step})}); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	if err := checkpoint.MarkLast(t.work, dir, t.cfg.KeepLast); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	t.log.Info("checkpoint", "step", t.state.Step, "dir", dir)
	return nil
}

// keepBest saves the current state as checkpoints/best when its validation
// NELBO is the lowest so far (the reference's ModelCheckpoint on val/nll,
// configs/callbacks/checkpoint_monitor.yaml).
func (t *trainer) keepBest(nll float64) error {
	if t.bestStep != 0 && nll >= t.bestNLL {
		return nil
	}
	t.bestStep, t.bestNLL = t.state.Step, nll
	tr, err := t.snapshot()
	if err != nil {
		return err
	}
	dir := filepath.Join(t.work, checkpoint.CheckpointsDir, checkpoint.BestDir)
	if _, err := checkpoint.SaveTraining(dir, tr, artifact.Manifest{Stage: "train", Backend: t.cfg.BackendName,
		Params: t.checkpointParams(map[string]any{"step": t.state.Step, "val_nll": nll})}); err != nil {
		return fmt.Errorf("train: best checkpoint: %w", err)
	}
	t.log.Info("best checkpoint", "step", t.state.Step, "val_nll", fmt.Sprintf("%.4f", nll))
	return nil
}

// WriteCheckpoint writes the finished run into dir, the files of a
// checkpoint/v1 artifact: the training checkpoint of the last step (weights,
// EMA, optimizer state, so a longer run can continue from it), metrics.jsonl
// without timings (one record per step and kind, so a resumed run's file
// equals an uninterrupted one's), loss.png, and the best checkpoint as best/.
func (r *Result) WriteCheckpoint(dir string) error {
	t := r.t
	tr, err := t.snapshot()
	if err != nil {
		return err
	}
	if err := checkpoint.WriteTraining(dir, tr); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	ms, err := ReadMetrics(t.work)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	ms = Reproducible(ms)
	if err := WriteMetrics(filepath.Join(dir, MetricsFile), ms); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := writePlot(filepath.Join(dir, "loss.png"), ms); err != nil {
		return fmt.Errorf("train: loss plot: %w", err)
	}
	best := filepath.Join(t.work, checkpoint.CheckpointsDir, checkpoint.BestDir)
	if _, err := os.Stat(best); err == nil {
		if err := copyArtifact(best, filepath.Join(dir, checkpoint.BestDir)); err != nil {
			return fmt.Errorf("train: best checkpoint: %w", err)
		}
	}
	return nil
}

// copyArtifact copies a published artifact's manifest and files (not its stat
// cache) into dst: the best checkpoint travels inside the published run, a
// checkpoint/v1 of its own that eval and sample open as <out>/best.
func copyArtifact(src, dst string) error {
	m, err := artifact.Read(src, "")
	if err != nil {
		return err
	}
	// The copy's manifest carries no creation time and backend, so that a
	// resumed run publishes the same bytes as an uninterrupted one.
	m.Created, m.Backend = time.Time{}, ""
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, artifact.ManifestName), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	for _, f := range m.Files {
		to := filepath.Join(dst, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := filehash.CopyFile(filepath.Join(src, filepath.FromSlash(f.Path)), to); err != nil {
			return err
		}
	}
	return nil
}
