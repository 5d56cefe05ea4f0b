package train

// Fine-tuning (--init): a run that starts from a checkpoint's weights and EMA,
// as BD3-LM's from_pretrained and DUO's finetune_path do and as reference
// issue #22 asks for the released weights, instead of a fresh initialisation.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/torchckpt"
)

// initSource is the checkpoint a run starts from (Config.Init): its model and
// method, its raw and EMA weights, its training state under --init-optimizer,
// and its digest. A resumed run needs only the model and the digest (the work
// directory holds the state): raw is nil then.
type initSource struct {
	model    backbone.Config
	method   checkpoint.Method
	raw, ema *backbone.Weights
	training *checkpoint.Training
	digest   string
}

// initRecordFile, in the work directory, remembers the --init a run started
// from (its model sizes and digest), so that a resumed run does not load the
// checkpoint again.
const initRecordFile = "init.json"

// maxInitRecord bounds the record read back (it is a few hundred bytes).
const maxInitRecord = 1 << 20

type initRecord struct {
	Ref    string          `json:"ref"`
	Digest string          `json:"digest"`
	Model  backbone.Config `json:"model"`
}

// openInit resolves Config.Init (nil without one). A run resuming from a
// checkpoint in its work directory takes the record the first start wrote.
func openInit(ctx context.Context, cfg Config, work string) (*initSource, error) {
	if cfg.Init == "" {
		return nil, nil
	}
	if last, _ := checkpoint.Resolve(work); last != work {
		if src, err := readInitRecord(work, cfg.Init); err == nil {
			return src, nil
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	src, err := loadInit(ctx, cfg, work)
	if err != nil {
		return nil, fmt.Errorf("--init %s: %w", cfg.Init, err)
	}
	if err := writeInitRecord(work, initRecord{Ref: cfg.Init, Digest: src.digest, Model: src.model}); err != nil {
		return nil, fmt.Errorf("--init: %w", err)
	}
	return src, nil
}

// loadInit loads a checkpoint/v1 (or a training work directory's last), a hub
// reference, or a Lightning .ckpt (imported by package checkpoint).
func loadInit(ctx context.Context, cfg Config, work string) (*initSource, error) {
	ref := cfg.Init
	if _, _, hub := checkpoint.ParseHubRef(ref); !hub {
		st, err := os.Stat(ref)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if !torchckpt.IsArchive(ref) {
				return nil, fmt.Errorf("neither a checkpoint directory, a Lightning .ckpt nor hub:org/name[@revision]")
			}
			if cfg.InitOptimizer {
				return nil, fmt.Errorf("--init-optimizer: a Lightning .ckpt's optimizer state is not imported; start with a fresh optimizer, or from a checkpoint written by mdlm train")
			}
			return fromLightning(ref, work)
		}
	}
	ck, err := checkpoint.OpenRef(ctx, ref, cfg.Log)
	if err != nil {
		return nil, err
	}
	src := &initSource{model: ck.Config.Model, method: ck.Config.Method, raw: ck.Weights, ema: ck.EMA, digest: ck.Manifest.Digest()}
	if cfg.InitOptimizer {
		tr, err := checkpoint.LoadTraining(ck.Dir)
		if err != nil {
			return nil, fmt.Errorf("--init-optimizer needs a training checkpoint (one written by mdlm train): %w", err)
		}
		src.training = tr
	}
	return src, nil
}

// fromLightning imports a reference .ckpt twice into the work directory
// (checkpoint.Import: its EMA weights, then its raw state_dict) and loads both.
func fromLightning(path, work string) (*initSource, error) {
	tmp := filepath.Join(work, ".init-import")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	load := func(name string, noEMA bool) (*checkpoint.Checkpoint, error) {
		dir := filepath.Join(tmp, name)
		if _, err := checkpoint.Import(checkpoint.ImportOptions{Src: path, Out: dir, NoEMA: noEMA, Tool: "mdlm train --init"}); err != nil {
			return nil, err
		}
		return checkpoint.Load(dir, false)
	}
	ema, err := load("ema", false)
	if err != nil {
		return nil, err
	}
	raw, err := load("raw", true)
	if err != nil {
		return nil, err
	}
	sum, _, err := filehash.Sum(path)
	if err != nil {
		return nil, err
	}
	return &initSource{model: raw.Config.Model, method: raw.Config.Method, raw: raw.Weights, ema: ema.Weights, digest: "sha256:" + sum}, nil
}

// initModel is the backbone of a run from ck: its architecture and sizes, the
// run's length and dropout. The data's vocabulary must be the model's, and the
// size flags either left unset (zero, "" or "custom") or equal to ck's.
func initModel(cfg Config, ck backbone.Config, meta artifact.PackedMeta, L int) (backbone.Config, error) {
	if ck.Vocab != meta.VocabSize || ck.MaskIndex != meta.MaskIndex {
		return backbone.Config{}, fmt.Errorf("--init: the model's vocabulary has %d tokens with [MASK] %d, but --data %s has %d with [MASK] %d (tokenizer %s): tokenize the data with the model's tokenizer",
			ck.Vocab, ck.MaskIndex, cfg.Data, meta.VocabSize, meta.MaskIndex, meta.Tokenizer)
	}
	isAR := ck.Arch == backbone.AR || ck.Arch == backbone.GPT2
	if (cfg.Parameterization == "ar") != isAR {
		return backbone.Config{}, fmt.Errorf("--parameterization %s: the --init checkpoint is a %s backbone", cfg.Parameterization, ck.Arch)
	}
	if cfg.Backbone != "" && !isAR && backbone.Arch(cfg.Backbone) != ck.Arch {
		return backbone.Config{}, fmt.Errorf("--backbone %s: the --init checkpoint is a %s", cfg.Backbone, ck.Arch)
	}
	want := ck
	if cfg.Model != "" && cfg.Model != "custom" {
		p, err := backbone.Preset(cfg.Model, ck.Arch, ck.Vocab, L)
		if err != nil {
			return backbone.Config{}, fmt.Errorf("--model %s: %w", cfg.Model, err)
		}
		if p.Hidden != ck.Hidden || p.Heads != ck.Heads || p.Blocks != ck.Blocks || p.Cond != ck.Cond {
			return backbone.Config{}, fmt.Errorf("--model %s has hidden %d, heads %d, blocks %d, cond %d; the --init checkpoint %d, %d, %d, %d (leave --model unset with --init)",
				cfg.Model, p.Hidden, p.Heads, p.Blocks, p.Cond, ck.Hidden, ck.Heads, ck.Blocks, ck.Cond)
		}
	}
	for _, f := range []struct {
		flag      string
		got, want int
	}{{"--hidden", cfg.Hidden, ck.Hidden}, {"--heads", cfg.Heads, ck.Heads}, {"--blocks", cfg.Blocks, ck.Blocks}, {"--cond", cfg.Cond, ck.Cond}} {
		if f.got != 0 && f.got != f.want {
			return backbone.Config{}, fmt.Errorf("%s %d: the --init checkpoint has %d (leave the size flags at their defaults with --init)", f.flag, f.got, f.want)
		}
	}
	want.Length, want.Dropout = L, cfg.Dropout
	return want, nil
}

// initFrom starts the run from src: its raw weights, its EMA (the raw weights
// when it has none), a fresh optimizer at step 0 and a fresh EMA warm-up, or
// under --init-optimizer its moments, step and EMA update count.
func (t *trainer) initFrom(src *initSource) error {
	if src.raw == nil {
		return fmt.Errorf("train: --init %s: no weights loaded (the work directory has no checkpoint to resume)", t.cfg.Init)
	}
	raw := &backbone.Weights{Config: t.ck.Model, Data: src.raw.Data, InvFreq: src.raw.InvFreq}
	ema := raw
	if src.ema != nil {
		ema = &backbone.Weights{Config: t.ck.Model, Data: src.ema.Data, InvFreq: src.ema.InvFreq}
	}
	t.invFreq = raw.RotaryInvFreqOrDefault()
	t.ema = ema.Tensors()
	if src.training == nil {
		var err error
		t.state, err = NewStateOn(t.b, raw, t.cfg.Seed, dtypes.Float32)
		t.log.Info("fine-tuning", "init", t.cfg.Init, "optimizer", "fresh")
		return err
	}
	tr := src.training
	if tr.State.Step >= t.cfg.Steps {
		return fmt.Errorf("train: --init-optimizer: %s is at step %d; --steps %d must be larger (it counts from the checkpoint's step)", t.cfg.Init, tr.State.Step, t.cfg.Steps)
	}
	st, err := stateFromTraining(t.b, tr, t.ck.Model, t.cfg.Seed)
	if err != nil {
		return err
	}
	t.state, t.emaN, t.validated = st, tr.State.EMAUpdates, tr.State.Step
	t.log.Info("fine-tuning", "init", t.cfg.Init, "optimizer", "continued", "step", tr.State.Step)
	return nil
}

// stateFromTraining is the step state of a training checkpoint: its raw
// weights, AdamW moments and step, and the dropout RNG of seed, made where
// backend b's steps keep it (newStateOn).
func stateFromTraining(b compute.Backend, tr *checkpoint.Training, model backbone.Config, seed int64) (*State, error) {
	return newStateOn(b, model, tr.Raw.Data, tr.M, tr.V, tr.State.Step, seed)
}

// writeInitRecord writes the work directory's record of the --init.
func writeInitRecord(work string, rec initRecord) error {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(work, initRecordFile), func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}

// readInitRecord reads the record back, refusing one of another --init (the
// work directory's marker already ties it to this run; this is a second check).
func readInitRecord(work, ref string) (*initSource, error) {
	path := filepath.Join(work, initRecordFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxInitRecord+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(raw) > maxInitRecord {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxInitRecord)
	}
	var rec initRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rec.Ref != ref {
		return nil, fmt.Errorf("%s: the work directory's run started from --init %q, not %q: remove it to start over", path, rec.Ref, ref)
	}
	if err := rec.Model.Validate(); err != nil {
		return nil, fmt.Errorf("%s: model: %w", path, err)
	}
	return &initSource{model: rec.Model, digest: rec.Digest}, nil
}
