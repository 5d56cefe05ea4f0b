package checkpoint

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/safetensors"
)

// TrainState is everything besides tensors that a resumed run needs. Data order,
// noise and dropout are functions of (seed, step), so the step is the data
// position and the RNG state at once.
type TrainState struct {
	Step       int     `json:"step"`                   // optimizer steps taken
	Seed       int64   `json:"seed"`                   // the run's seed
	EMAUpdates int     `json:"ema_updates"`            // n of the EMA warm-up min(decay, (1+n)/(10+n))
	BestStep   int     `json:"best_step,omitempty"`    // the step with the lowest validation NELBO so far
	BestValNLL float64 `json:"best_val_nll,omitempty"` // that NELBO (per token, nats)
	// ValidatedStep is the last step whose validation completed (a checkpoint
	// written during an interrupted validation has Step > ValidatedStep).
	ValidatedStep int            `json:"validated_step,omitempty"`
	Options       map[string]any `json:"options"` // training options, to refuse an incompatible resume
}

// Training is a training checkpoint's content.
type Training struct {
	Config Config
	Raw    *backbone.Weights
	EMA    *backbone.Weights
	M, V   map[string][]float32
	State  TrainState
}

// SaveTraining publishes a training checkpoint (a checkpoint/v1 artifact with EMA,
// optimizer moments and state) at dir.
func SaveTraining(dir string, t Training, m artifact.Manifest) (artifact.Manifest, error) {
	m.Type = artifact.CheckpointType
	return artifact.Publish(dir, m, func(tmp string) error { return WriteTraining(tmp, t) })
}

// WriteTraining writes a training checkpoint's files (config, weights, EMA,
// optimizer moments, state) into tmp, an artifact directory being published.
func WriteTraining(tmp string, t Training) error {
	raw, err := writeConfig(tmp, t.Config)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "pt", "mdlm_config": string(raw)}
	if err := safetensors.WriteFile(filepath.Join(tmp, WeightsFile), t.Raw.SafetensorsTensors(""), meta); err != nil {
		return err
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, EMAFile), t.EMA.SafetensorsTensors(""), meta); err != nil {
		return err
	}
	var opt []safetensors.Tensor
	for _, s := range t.Config.Model.Specs() {
		opt = append(opt, safetensors.FromFloat32("m/"+s.Name, s.Shape, t.M[s.Name]), safetensors.FromFloat32("v/"+s.Name, s.Shape, t.V[s.Name]))
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, OptimFile), opt, nil); err != nil {
		return err
	}
	st, err := json.MarshalIndent(t.State, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tmp, StateFile), append(st, '\n'), 0o644)
}

// LoadTraining reads a training checkpoint (verifying its checksums).
func LoadTraining(dir string) (*Training, error) {
	c, err := Load(dir, true)
	if err != nil {
		return nil, err
	}
	if c.EMA == nil {
		return nil, fmt.Errorf("checkpoint %s: no %s: not a training checkpoint", dir, EMAFile)
	}
	t := &Training{Config: c.Config, Raw: c.Weights, EMA: c.EMA, M: map[string][]float32{}, V: map[string][]float32{}}
	f, err := safetensors.OpenMmap(filepath.Join(dir, OptimFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer f.Close()
	for _, s := range c.Config.Model.Specs() {
		for _, mv := range []struct {
			prefix string
			dst    map[string][]float32
		}{{"m/", t.M}, {"v/", t.V}} {
			v, shape, err := f.Float32(mv.prefix + s.Name)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %s: optimizer state: %w", dir, err)
			}
			if len(v) != s.Size() {
				return nil, fmt.Errorf("checkpoint %s: optimizer state %s%s has shape %v, want %v", dir, mv.prefix, s.Name, shape, s.Shape)
			}
			mv.dst[s.Name] = v
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &t.State); err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", dir, StateFile, err)
	}
	return t, nil
}

// A run directory keeps its checkpoints in "checkpoints/step-NNNNNNNN", names
// the newest complete one in "checkpoints/last", and keeps the one with the
// lowest validation NELBO in "checkpoints/best" (BestDir; never pruned).
const (
	CheckpointsDir = "checkpoints"
	LastFile       = "last"
	BestDir        = "best"
)

// StepDir is the checkpoint directory of a step.
func StepDir(run string, step int) string {
	return filepath.Join(run, CheckpointsDir, fmt.Sprintf("step-%08d", step))
}

// MarkLast points checkpoints/last at a published checkpoint (atomically) and
// removes all but the newest keep step checkpoints.
func MarkLast(run, stepDir string, keep int) error {
	last := filepath.Join(run, CheckpointsDir, LastFile)
	if err := atomicfile.Write(last, func(w io.Writer) error {
		_, err := w.Write([]byte(filepath.Base(stepDir) + "\n"))
		return err
	}); err != nil {
		return err
	}
	if keep <= 0 {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(run, CheckpointsDir, "step-*"))
	sort.Strings(dirs)
	for i := 0; i < len(dirs)-keep; i++ {
		if dirs[i] != stepDir && !strings.Contains(filepath.Base(dirs[i]), ".tmp-") {
			os.RemoveAll(dirs[i])
		}
	}
	return nil
}

// Resolve turns a run directory into its last checkpoint; a checkpoint directory
// is returned as is.
func Resolve(path string) (string, error) {
	last := filepath.Join(path, CheckpointsDir, LastFile)
	raw, err := os.ReadFile(last)
	if os.IsNotExist(err) {
		return path, nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(path, CheckpointsDir, strings.TrimSpace(string(raw))), nil
}
