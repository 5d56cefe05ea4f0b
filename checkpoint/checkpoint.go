// Package checkpoint is the on-disk model format of mdlm, the checkpoint/v1
// artifact:
//
//	<dir>/
//	  artifact.json      manifest: type checkpoint/v1, files with sha256 (package artifact)
//	  config.json        Config: backbone sizes and the diffusion method settings
//	  tokenizer.json     the tokenizer, when it is a file (config.json then records
//	                     "tokenizer.json", as a Hugging Face model folder; see
//	                     artifact.ResolveTokenizer)
//	  model.safetensors  weights under the reference's state-dict names (no prefix),
//	                     in registration order, plus the rotary_emb.inv_freq buffer
//
// Weights keep the PyTorch names and layouts, so a checkpoint's model.safetensors
// loads into the reference DIT with load_state_dict as is; Export adds the
// "backbone." prefix for the Lightning / Hugging Face layout.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/safetensors"
)

// File names inside a checkpoint directory.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
	EMAFile     = "ema.safetensors"       // EMA of the weights (training checkpoints)
	OptimFile   = "optimizer.safetensors" // AdamW moments "m/<name>", "v/<name>"
	StateFile   = "state.json"            // TrainState
)

// Method holds the diffusion settings a checkpoint was trained with (the reference's `configs/config.yaml` and `diffusion.py: Diffusion.__init__`).
type Method struct {
	Parameterization string `json:"parameterization"` // subs, d3pm, sedd, ar
	T                int    `json:"T"`                // 0: continuous time
	TimeConditioning bool   `json:"time_conditioning"`
	Noise            string `json:"noise"` // loglinear, ...
	// SigmaMin and SigmaMax bound the linear and geometric schedules (0: the
	// reference's bounds for the schedule, diffusion.ReferenceSigmaBounds).
	SigmaMin float64 `json:"sigma_min,omitempty"`
	SigmaMax float64 `json:"sigma_max,omitempty"`
}

// WithBounds records the σ bounds the schedule is used with: the reference's
// for linear and geometric when none are set; none for the other schedules.
func (m Method) WithBounds() Method {
	switch m.Noise {
	case "linear", "geometric":
		if m.SigmaMin == 0 && m.SigmaMax == 0 {
			m.SigmaMin, m.SigmaMax = diffusion.ReferenceSigmaBounds(m.Noise)
		}
	default:
		m.SigmaMin, m.SigmaMax = 0, 0
	}
	return m
}

// Config is a checkpoint's config.json.
type Config struct {
	Model     backbone.Config `json:"model"`
	Method    Method          `json:"method"`
	Tokenizer string          `json:"tokenizer,omitempty"`
	// Objective is the training switches when they are not the reference's
	// defaults (nil: diffusion.DefaultObjective; see config.go).
	Objective *diffusion.Objective `json:"objective,omitempty"`
}

// DefaultMethod is the reference MDLM: SUBS, continuous time, no time conditioning,
// loglinear noise; the AR backbone gets the ar parameterization.
func DefaultMethod(arch backbone.Arch) Method {
	if arch == backbone.AR {
		return Method{Parameterization: "ar", Noise: "loglinear"}
	}
	return Method{Parameterization: "subs", Noise: "loglinear"}
}

// Checkpoint is a loaded checkpoint.
type Checkpoint struct {
	Dir      string
	Config   Config
	Weights  *backbone.Weights // the raw (trained) weights
	EMA      *backbone.Weights // the EMA weights, when the checkpoint has them
	Manifest artifact.Manifest
}

// ForInference returns the weights evaluation and sampling use: the EMA weights
// when present (the reference always swaps them in), else the raw ones.
func (c *Checkpoint) ForInference() *backbone.Weights {
	if c.EMA != nil {
		return c.EMA
	}
	return c.Weights
}

// Save publishes weights and config as a checkpoint/v1 artifact at dir.
func Save(dir string, cfg Config, w *backbone.Weights, m artifact.Manifest) (artifact.Manifest, error) {
	if err := cfg.Model.Validate(); err != nil {
		return m, err
	}
	m.Type = artifact.CheckpointType
	return artifact.Publish(dir, m, func(tmp string) error {
		raw, err := writeConfig(tmp, cfg)
		if err != nil {
			return err
		}
		meta := map[string]string{"format": "pt", "mdlm_config": string(raw)}
		return safetensors.WriteFile(filepath.Join(tmp, WeightsFile), w.SafetensorsTensors(""), meta)
	})
}

// Load reads a checkpoint directory; with verify set, every file is re-hashed
// against the manifest first.
func Load(dir string, verify bool) (*Checkpoint, error) {
	m, err := artifact.Read(dir, artifact.CheckpointType)
	if err != nil {
		return nil, err
	}
	if verify {
		if err := artifact.Verify(dir, m); err != nil {
			return nil, err
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", dir, ConfigFile, err)
	}
	if cfg.Tokenizer, err = loadTokenizerName(dir, cfg.Tokenizer); err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", dir, ConfigFile, err)
	}
	if err := cfg.Model.Validate(); err != nil {
		return nil, fmt.Errorf("checkpoint %s/%s: %w", dir, ConfigFile, err)
	}
	w, err := loadWeightsFile(filepath.Join(dir, WeightsFile), cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c := &Checkpoint{Dir: dir, Config: cfg, Weights: w, Manifest: m}
	if _, err := os.Stat(filepath.Join(dir, EMAFile)); err == nil {
		if c.EMA, err = loadWeightsFile(filepath.Join(dir, EMAFile), cfg.Model); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
	}
	return c, nil
}

func loadWeightsFile(path string, cfg backbone.Config) (*backbone.Weights, error) {
	f, err := safetensors.OpenMmap(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backbone.LoadWeights(f, cfg)
}

// Diffusion builds the objective the checkpoint was trained with: its backbone,
// parameterization, time discretisation, conditioning and noise schedule, and
// the training switches of Objective when it records them (the subs masking
// of d3pm among them, which sampling applies too).
func (c Config) Diffusion() (diffusion.Model, error) {
	b := c.Method.WithBounds()
	sched, err := diffusion.NewSchedule(c.Method.Noise, b.SigmaMin, b.SigmaMax)
	if err != nil {
		return diffusion.Model{}, err
	}
	m := diffusion.Model{Backbone: c.Model, Param: diffusion.Parameterization(c.Method.Parameterization),
		T: c.Method.T, TimeConditioning: c.Method.TimeConditioning, Schedule: sched}
	if c.Objective != nil {
		m = m.WithObjective(*c.Objective)
	}
	return m, m.Validate()
}

// Open is how a stage reads a checkpoint input: a checkpoint/v1 directory, or
// a training work directory (its last checkpoint), verified and loaded.
func Open(path string) (*Checkpoint, error) {
	dir, err := Resolve(path)
	if err != nil {
		return nil, err
	}
	return Load(dir, true)
}

// Tokenizer is what tokenizer.Load takes for the checkpoint's tokenizer ("":
// none): a built-in name or the checkpoint's own tokenizer.json. A path an
// older checkpoint recorded that is gone is an error naming the checkpoint.
func (c *Checkpoint) Tokenizer() (string, error) {
	name := c.Config.Tokenizer
	if name == filepath.Join(c.Dir, artifact.TokenizerFile) {
		name = artifact.TokenizerFile // as Load resolved it (c.Dir may be relative)
	}
	return artifact.ResolveTokenizer(c.Dir, name)
}

// loadTokenizerName is the tokenizer of config.json in memory: what
// tokenizer.Load takes, the checkpoint's own tokenizer.json by its path
// (embedded again when the config is saved). A path an older checkpoint
// recorded that is gone is kept with a warning: the weights still export,
// inspect and initialise a fine-tune, and what needs the tokenizer (sample,
// a gen-PPL scorer) fails naming the checkpoint (artifact.ResolveTokenizer).
func loadTokenizerName(dir, name string) (string, error) {
	resolved, err := artifact.ResolveTokenizer(dir, name)
	if errors.Is(err, artifact.ErrTokenizerGone) {
		slog.Warn("checkpoint: its tokenizer is gone; sampling and scoring with it will fail", "checkpoint", dir, "tokenizer", name)
		return name, nil
	}
	return resolved, err
}

// writeConfig writes cfg as tmp's config.json (an artifact being published)
// and returns its bytes. A tokenizer that is a file is copied in as
// tokenizer.json and recorded by that name, as a Hugging Face model folder
// keeps it: the checkpoint never points outside itself.
func writeConfig(tmp string, cfg Config) ([]byte, error) {
	name, err := artifact.EmbedTokenizer(tmp, cfg.Tokenizer)
	if err != nil {
		return nil, err
	}
	cfg.Tokenizer = name
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, ConfigFile), append(raw, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", ConfigFile, err)
	}
	return raw, nil
}
