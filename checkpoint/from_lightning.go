package checkpoint

// Importing the reference's PyTorch Lightning checkpoints (.ckpt) as
// checkpoint/v1: package torchckpt reads the archive (state_dict, the EMA's
// shadow_params, the Hydra config); this file turns what it read into a
// backbone config, a method and weights, checking every name and shape.

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/tokenizer"
	"github.com/mdlm-go/mdlm/torchckpt"
)

// importLightning publishes a reference .ckpt as checkpoint/v1: the model and
// the method from its Hydra config (backbone, model sizes, parameterization,
// T, time conditioning, noise), the vocabulary from the embedding's shape, and
// by default the EMA weights (shadow_params, in DIT.parameters() order).
func importLightning(opts ImportOptions) (artifact.Manifest, error) {
	fail := func(err error) (artifact.Manifest, error) {
		return artifact.Manifest{}, fmt.Errorf("import %s: %w", opts.Src, err)
	}
	l, err := torchckpt.Read(opts.Src)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import: %w", err)
	}
	cfg, method, err := lightningConfig(l)
	if err != nil {
		return fail(err)
	}
	if opts.Heads > 0 {
		cfg.Heads = opts.Heads
	}
	if opts.Length > 0 {
		cfg.Length = opts.Length
	}
	if opts.Method.Parameterization != "" {
		method = opts.Method
	}
	if opts.Tokenizer != "" {
		tok, err := tokenizer.Load(opts.Tokenizer)
		if err != nil {
			return fail(err)
		}
		v, err := tokenizer.ForModel(tok)
		if err != nil {
			return fail(err)
		}
		if v.V != cfg.Vocab {
			return fail(fmt.Errorf("tokenizer %s has a model vocabulary of %d, the weights %d rows", opts.Tokenizer, v.V, cfg.Vocab))
		}
		cfg.MaskIndex = v.Mask
	}
	if err := cfg.Validate(); err != nil {
		return fail(fmt.Errorf("hyper_parameters.config: %w", err))
	}
	w, err := lightningWeights(l, cfg, !opts.NoEMA)
	if err != nil {
		return fail(err)
	}
	m := artifact.Manifest{Stage: "checkpoint import", Tool: opts.Tool, Params: opts.params(map[string]any{"src": filepath.Base(opts.Src),
		"format": "lightning", "global_step": l.GlobalStep, "weights": map[bool]string{true: "raw", false: "ema"}[opts.NoEMA]})}
	return Save(opts.Out, Config{Model: cfg, Method: method.WithBounds(), Tokenizer: opts.Tokenizer}, w, m)
}

// lightningConfig reads the backbone sizes and the method from the Hydra
// config (the reference's configs/config.yaml keys: backbone, model.*,
// parameterization, T, time_conditioning, noise.*).
func lightningConfig(l *torchckpt.Lightning) (backbone.Config, Method, error) {
	if l.Config == nil {
		return backbone.Config{}, Method{}, fmt.Errorf("no hyper_parameters.config: pass the sizes and method another way (import a safetensors state dict with a config.json)")
	}
	h := hydraConfig(l.Config)
	cfg, err := h.model()
	if err != nil {
		return cfg, Method{}, err
	}
	embName := backbone.CheckpointPrefix + cfg.EmbeddingName()
	emb, ok := l.State[embName]
	if !ok || len(emb.Shape) != 2 {
		return cfg, Method{}, fmt.Errorf("state_dict has no 2-D %s", embName)
	}
	cfg.Vocab, cfg.MaskIndex = emb.Shape[0], emb.Shape[0]-1
	return cfg, h.method(cfg.Arch), nil
}

// hydraConfig is hyper_parameters.config as plain values.
type hydraConfig map[string]any

// str is the string at path (false: missing or not a string).
func (h hydraConfig) str(path ...string) (string, bool) {
	v, ok := lookup(h, path...)
	s, isStr := v.(string)
	return s, ok && isStr
}

// num is the integer at path; missing or another type is an error naming it.
func (h hydraConfig) num(path ...string) (int, error) {
	v, ok := lookup(h, path...)
	if !ok {
		return 0, fmt.Errorf("hyper_parameters.config.%s: missing", strings.Join(path, "."))
	}
	n, isInt := v.(int)
	if !isInt {
		return 0, fmt.Errorf("hyper_parameters.config.%s: %v is not an integer", strings.Join(path, "."), v)
	}
	return n, nil
}

// model reads the backbone and its sizes (all but the vocabulary, which the
// embedding's shape gives).
func (h hydraConfig) model() (backbone.Config, error) {
	var cfg backbone.Config
	switch arch, _ := h.str("backbone"); arch {
	case "dit", "":
		cfg.Arch = backbone.DiT
	case "ar":
		cfg.Arch = backbone.AR
	case "dimamba":
		cfg.Arch = backbone.DiMamba
	default:
		return cfg, fmt.Errorf("hyper_parameters.config.backbone: %q is not supported (dit, ar, dimamba)", arch)
	}
	var err error
	keys := map[string]*int{"hidden_size": &cfg.Hidden, "n_blocks": &cfg.Blocks, "length": &cfg.Length, "n_heads": &cfg.Heads}
	if cfg.Arch == backbone.DiMamba {
		delete(keys, "n_heads") // attention-free
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		if *keys[key], err = h.num("model", key); err != nil {
			return cfg, err
		}
	}
	if err := h.checkDiMamba(cfg.Arch); err != nil {
		return cfg, err
	}
	if cfg.Arch != backbone.AR {
		if cfg.Cond, err = h.num("model", "cond_dim"); err != nil {
			return cfg, err
		}
	}
	if d, ok := lookup(h, "model", "dropout"); ok {
		cfg.Dropout, _ = toFloat(d)
	}
	return cfg.WithMambaDefaults(), nil
}

// checkDiMamba refuses DiMamba configs backbone does not build: a time
// embedding other than adaLN, or lm_head tied to the embedding (the
// reference's tiny-dimamba has neither; models/dimamba.py).
func (h hydraConfig) checkDiMamba(arch backbone.Arch) error {
	if arch != backbone.DiMamba {
		return nil
	}
	if ts, ok := h.str("model", "temb_strategy"); ok && ts != "adaln" {
		return fmt.Errorf("hyper_parameters.config.model.temb_strategy: %q is not supported (adaln, the reference's tiny-dimamba)", ts)
	}
	if tie, ok := lookup(h, "model", "tie_word_embeddings"); ok && tie == true {
		return fmt.Errorf("hyper_parameters.config.model.tie_word_embeddings: true is not supported (the reference's tiny-dimamba unties lm_head)")
	}
	return nil
}

// method reads the parameterization, T, time conditioning and noise schedule;
// without a parameterization, arch's default method.
func (h hydraConfig) method(arch backbone.Arch) Method {
	var method Method
	method.Parameterization, _ = h.str("parameterization")
	if method.Parameterization == "" {
		method = DefaultMethod(arch)
	}
	if t, ok := lookup(h, "T"); ok {
		method.T, _ = t.(int)
	}
	if tc, ok := lookup(h, "time_conditioning"); ok {
		method.TimeConditioning, _ = tc.(bool)
	}
	method.Noise = "loglinear"
	if n, ok := h.str("noise", "type"); ok {
		method.Noise = n
		if n == "linear" || n == "geometric" {
			lo, _ := lookup(h, "noise", "sigma_min")
			hi, _ := lookup(h, "noise", "sigma_max")
			method.SigmaMin, _ = toFloat(lo)
			method.SigmaMax, _ = toFloat(hi)
		}
	}
	return method
}

// lightningWeights picks the EMA shadow params (by DIT.parameters() order) or
// the raw state_dict, checking every name and shape; the rotary buffer comes
// from the state_dict either way.
func lightningWeights(l *torchckpt.Lightning, cfg backbone.Config, ema bool) (*backbone.Weights, error) {
	specs := cfg.Specs()
	w := &backbone.Weights{Config: cfg, Data: map[string][]float32{}}
	if inv, ok := l.State[backbone.CheckpointPrefix+backbone.InvFreqName]; ok {
		w.InvFreq = inv.Data
	}
	if ema {
		if l.EMA == nil {
			return nil, fmt.Errorf("no ema.shadow_params in the checkpoint: pass --no-ema to import the raw state_dict")
		}
		if len(l.EMA) != len(specs) {
			return nil, fmt.Errorf("ema.shadow_params has %d tensors, a %s backbone with this config has %d parameters", len(l.EMA), cfg.Arch, len(specs))
		}
		for i, s := range specs {
			if !slices.Equal(l.EMA[i].Shape, s.Shape) {
				return nil, fmt.Errorf("ema.shadow_params[%d] (%s) has shape %v, want %v", i, s.Name, l.EMA[i].Shape, s.Shape)
			}
			w.Data[s.Name] = l.EMA[i].Data
		}
		return w, nil
	}
	used := map[string]bool{backbone.CheckpointPrefix + backbone.InvFreqName: true}
	for _, t := range cfg.TiedParams() { // the same tensor under a second name
		used[backbone.CheckpointPrefix+t.Name] = true
	}
	for _, s := range specs {
		name := backbone.CheckpointPrefix + s.Name
		t, ok := l.State[name]
		if !ok {
			return nil, fmt.Errorf("state_dict: missing parameter %q (shape %v)", name, s.Shape)
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return nil, fmt.Errorf("state_dict[%q] has shape %v, want %v", name, t.Shape, s.Shape)
		}
		w.Data[s.Name] = t.Data
		used[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(l.State)) {
		if !used[name] {
			return nil, fmt.Errorf("state_dict[%q] is not part of a %s backbone with this config", name, cfg.Arch)
		}
	}
	return w, nil
}

// lookup follows a path of keys through nested maps.
func lookup(m map[string]any, path ...string) (any, bool) {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// toFloat reads a config number written as a float or an integer.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}
