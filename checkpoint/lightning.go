package checkpoint

// Reading the reference's PyTorch Lightning checkpoints (.ckpt): torch.save zip
// archives (one top folder holding data.pkl, data/<key> storages and version)
// whose pickle (protocol 2-5) holds state_dict, the EMA's shadow_params, the
// Hydra config in hyper_parameters, and Lightning's bookkeeping. The pickle is
// read by github.com/nlpodyssey/gopickle; objects of classes Go cannot know
// (omegaconf's DictConfig, a transformers tokenizer, Lightning callbacks)
// become generic objects that keep their constructor arguments, state and
// items, so the config's values can still be read.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/tokenizer"
	"github.com/nlpodyssey/gopickle/types"
)

// Lightning is what mdlm uses of a reference training checkpoint.
type Lightning struct {
	Path       string
	State      map[string]Float32Tensor // state_dict, names as stored ("backbone." prefix)
	EMA        []Float32Tensor          // ema.shadow_params, in DIT.parameters() order (nil: none)
	EMADecay   float64
	EMAUpdates int
	GlobalStep int
	Config     map[string]any // hyper_parameters.config as plain values (nil: none)
}

// Float32Tensor is a tensor materialised in row-major order as float32.
type Float32Tensor struct {
	Shape []int
	Data  []float32
}

// ReadLightning reads a .ckpt file. A file that is not a zip archive, a
// truncated one, or a pickle it cannot decode is an error naming the file; so
// is one whose sizes, shapes or nesting exceed what the file can hold
// (torchzip.go, picklescan.go).
func ReadLightning(path string) (*Lightning, error) {
	l, err := readLightning(path)
	if err != nil {
		return nil, fmt.Errorf("lightning checkpoint %s: %w", path, err)
	}
	return l, nil
}

func readLightning(path string) (*Lightning, error) {
	a, err := openTorchArchive(path)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	obj, err := a.load()
	if err != nil {
		return nil, err
	}
	top, ok := obj.(*types.Dict)
	if !ok {
		return nil, fmt.Errorf("top-level object is %T, want a dict", obj)
	}
	l := &Lightning{Path: path, State: map[string]Float32Tensor{}}
	sd, ok := top.Get("state_dict")
	if !ok {
		return nil, fmt.Errorf("no state_dict")
	}
	var w walker
	if err := w.eachItem(sd, 0, func(k, v any) error {
		name, _ := k.(string)
		t, err := a.materialise(v)
		if err != nil {
			return fmt.Errorf("state_dict[%q]: %w", name, err)
		}
		l.State[name] = t
		return nil
	}); err != nil {
		return nil, err
	}
	if ema, ok := top.Get("ema"); ok {
		if err := l.readEMA(a, ema); err != nil {
			return nil, fmt.Errorf("ema: %w", err)
		}
	}
	if gs, ok := top.Get("global_step"); ok {
		l.GlobalStep, _ = gs.(int)
	}
	if err := l.readConfig(top); err != nil {
		return nil, err
	}
	return l, nil
}

// readConfig reads hyper_parameters.config as plain values.
func (l *Lightning) readConfig(top *types.Dict) error {
	hp, ok := top.Get("hyper_parameters")
	if !ok {
		return nil
	}
	var w walker
	cfg, ok := w.itemGet(hp, "config", 0)
	if !ok {
		return nil
	}
	v, err := w.plain(cfg, 0)
	if err != nil {
		return fmt.Errorf("hyper_parameters.config: %w", err)
	}
	l.Config, _ = v.(map[string]any)
	return nil
}

func (l *Lightning) readEMA(a *torchArchive, ema any) error {
	var w walker
	sp, ok := w.itemGet(ema, "shadow_params", 0)
	if !ok {
		return fmt.Errorf("no shadow_params")
	}
	list, ok := sp.(*types.List)
	if !ok {
		return fmt.Errorf("shadow_params is %T, want a list", sp)
	}
	for i := 0; i < list.Len(); i++ {
		t, err := a.materialise(list.Get(i))
		if err != nil {
			return fmt.Errorf("shadow_params[%d]: %w", i, err)
		}
		l.EMA = append(l.EMA, t)
	}
	if d, ok := w.itemGet(ema, "decay", 0); ok {
		l.EMADecay, _ = d.(float64)
	}
	if n, ok := w.itemGet(ema, "num_updates", 0); ok {
		l.EMAUpdates, _ = n.(int)
	}
	return nil
}

// materialise copies a pickled tensor into row-major float32.
func (a *torchArchive) materialise(v any) (Float32Tensor, error) {
	t, ok := v.(*torchTensor)
	if !ok {
		return Float32Tensor{}, fmt.Errorf("%T is not a tensor", v)
	}
	data, err := a.float32s(t)
	if err != nil {
		return Float32Tensor{}, err
	}
	return Float32Tensor{Shape: append([]int(nil), t.size...), Data: data}, nil
}

// pyClass is a Python class Go does not know; calling it makes a pyObject.
type pyClass struct{ Module, Name string }

func (c *pyClass) String() string                 { return c.Module + "." + c.Name }
func (c *pyClass) Call(args ...any) (any, error)  { return &pyObject{Class: c, Args: args}, nil }
func (c *pyClass) PyNew(args ...any) (any, error) { return &pyObject{Class: c, Args: args}, nil }

// pyObject is an instance of a pyClass: its constructor arguments, the state
// given to __setstate__ or its __dict__, and any dict items or list elements
// the pickle added to it (a dict or list subclass).
type pyObject struct {
	Class *pyClass
	Args  []any
	State any
	Items *types.Dict
	List  []any
}

func (o *pyObject) PySetState(state any) error { o.State = state; return nil }
func (o *pyObject) Set(k, v any) {
	if o.Items == nil {
		o.Items = types.NewDict()
	}
	o.Items.Set(k, v)
}
func (o *pyObject) Append(v any) { o.List = append(o.List, v) }

const (
	// maxDepth bounds the nesting of pickled values the reader walks
	// (itemGet, eachItem, plain): a hostile pickle can nest lists millions
	// deep, or make a value contain itself.
	maxDepth = 1000
	// maxSteps bounds the values one walk visits: a value shared at every
	// level of a nest would otherwise be visited exponentially often. A
	// Hydra config has hundreds of values.
	maxSteps = 1 << 20
)

// walker walks pickled values within maxDepth and maxSteps.
type walker struct{ steps int }

func (w *walker) step(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	if w.steps++; w.steps > maxSteps {
		return fmt.Errorf("more than %d values visited (shared or cyclic references)", maxSteps)
	}
	return nil
}

// itemGet looks a key up in a dict, an ordered dict or a generic object's
// items, state or attributes.
func (w *walker) itemGet(v any, key string, depth int) (any, bool) {
	var found any
	ok := false
	w.eachItem(v, depth, func(k, val any) error {
		if s, _ := k.(string); s == key && !ok {
			found, ok = val, true
		}
		return nil
	})
	return found, ok
}

// eachItem calls fn for every key/value of a pickled mapping.
func (w *walker) eachItem(v any, depth int, fn func(k, v any) error) error {
	if err := w.step(depth); err != nil {
		return err
	}
	switch m := v.(type) {
	case *types.Dict:
		for _, e := range *m {
			if err := fn(e.Key, e.Value); err != nil {
				return err
			}
		}
	case *types.OrderedDict:
		for e := m.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			if err := fn(entry.Key, entry.Value); err != nil {
				return err
			}
		}
	case *pyObject:
		if m.Items != nil {
			if err := w.eachItem(m.Items, depth+1, fn); err != nil {
				return err
			}
		}
		if m.State != nil {
			return w.eachItem(m.State, depth+1, fn)
		}
	default:
		return fmt.Errorf("%T is not a mapping", v)
	}
	return nil
}

// plain turns pickled values into Go maps, slices and scalars. omegaconf's
// DictConfig and ListConfig keep their values under _content in their state,
// each leaf an AnyNode (or a typed node) whose state holds _val.
func (w *walker) plain(v any, depth int) (any, error) {
	if err := w.step(depth); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case *pyObject:
		if content, ok := w.itemGet(x, "_content", depth+1); ok {
			return w.plain(content, depth+1)
		}
		if val, ok := w.itemGet(x, "_val", depth+1); ok {
			return w.plain(val, depth+1)
		}
		if x.List != nil {
			return w.plainSeq(len(x.List), func(i int) any { return x.List[i] }, depth+1)
		}
		return w.plainMap(x, depth+1)
	case *types.Dict, *types.OrderedDict:
		return w.plainMap(x, depth+1)
	case *types.List:
		return w.plainSeq(x.Len(), x.Get, depth+1)
	case *types.Tuple:
		return w.plainSeq(x.Len(), x.Get, depth+1)
	}
	return v, nil
}

func (w *walker) plainMap(v any, depth int) (map[string]any, error) {
	out := map[string]any{}
	err := w.eachItem(v, depth, func(k, val any) error {
		s, ok := k.(string)
		if !ok {
			return nil
		}
		p, err := w.plain(val, depth+1)
		out[s] = p
		return err
	})
	return out, err
}

func (w *walker) plainSeq(n int, get func(int) any, depth int) ([]any, error) {
	out := make([]any, n)
	for i := range out {
		p, err := w.plain(get(i), depth)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// sortedNames lists a map's keys in order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// isLightning reports whether path looks like a torch.save checkpoint: a
// regular file named *.ckpt or *.pt, or a zip archive (torch.save's format).
func isLightning(path string) bool {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() {
		return false
	}
	if ext := filepath.Ext(path); ext == ".ckpt" || ext == ".pt" || ext == ".pth" {
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = io.ReadFull(f, magic)
	return err == nil && string(magic) == "PK\x03\x04"
}

// importLightning publishes a reference .ckpt as checkpoint/v1: the model and
// the method from its Hydra config (backbone, model sizes, parameterization,
// T, time conditioning, noise), the vocabulary from the embedding's shape, and
// by default the EMA weights (shadow_params, in DIT.parameters() order).
func importLightning(opts ImportOptions) (artifact.Manifest, error) {
	fail := func(err error) (artifact.Manifest, error) {
		return artifact.Manifest{}, fmt.Errorf("import %s: %w", opts.Src, err)
	}
	l, err := ReadLightning(opts.Src)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("import: %w", err)
	}
	cfg, method, err := l.modelConfig()
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
	w, err := l.weights(cfg, !opts.NoEMA)
	if err != nil {
		return fail(err)
	}
	m := artifact.Manifest{Stage: "checkpoint import", Tool: opts.Tool, Params: opts.params(map[string]any{"src": filepath.Base(opts.Src),
		"format": "lightning", "global_step": l.GlobalStep, "weights": map[bool]string{true: "raw", false: "ema"}[opts.NoEMA]})}
	return Save(opts.Out, Config{Model: cfg, Method: method.WithBounds(), Tokenizer: opts.Tokenizer}, w, m)
}

// modelConfig reads the backbone sizes and the method from the Hydra config.
func (l *Lightning) modelConfig() (backbone.Config, Method, error) {
	var cfg backbone.Config
	var method Method
	if l.Config == nil {
		return cfg, method, fmt.Errorf("no hyper_parameters.config: pass the sizes and method another way (import a safetensors state dict with a config.json)")
	}
	str := func(path ...string) (string, bool) {
		v, ok := lookup(l.Config, path...)
		s, isStr := v.(string)
		return s, ok && isStr
	}
	num := func(path ...string) (int, error) {
		v, ok := lookup(l.Config, path...)
		if !ok {
			return 0, fmt.Errorf("hyper_parameters.config.%s: missing", strings.Join(path, "."))
		}
		n, isInt := v.(int)
		if !isInt {
			return 0, fmt.Errorf("hyper_parameters.config.%s: %v is not an integer", strings.Join(path, "."), v)
		}
		return n, nil
	}
	switch arch, _ := str("backbone"); arch {
	case "dit", "":
		cfg.Arch = backbone.DiT
	case "ar":
		cfg.Arch = backbone.AR
	case "dimamba":
		cfg.Arch = backbone.DiMamba
	default:
		return cfg, method, fmt.Errorf("hyper_parameters.config.backbone: %q is not supported (dit, ar, dimamba)", arch)
	}
	var err error
	keys := map[string]*int{"hidden_size": &cfg.Hidden, "n_blocks": &cfg.Blocks, "length": &cfg.Length, "n_heads": &cfg.Heads}
	if cfg.Arch == backbone.DiMamba {
		delete(keys, "n_heads") // attention-free
	}
	for _, key := range sortedNames(keys) {
		if *keys[key], err = num("model", key); err != nil {
			return cfg, method, err
		}
	}
	if cfg.Arch == backbone.DiMamba {
		if ts, ok := str("model", "temb_strategy"); ok && ts != "adaln" {
			return cfg, method, fmt.Errorf("hyper_parameters.config.model.temb_strategy: %q is not supported (adaln, the reference's tiny-dimamba)", ts)
		}
		if tie, ok := lookup(l.Config, "model", "tie_word_embeddings"); ok && tie == true {
			return cfg, method, fmt.Errorf("hyper_parameters.config.model.tie_word_embeddings: true is not supported (the reference's tiny-dimamba unties lm_head)")
		}
	}
	if cfg.Arch != backbone.AR {
		if cfg.Cond, err = num("model", "cond_dim"); err != nil {
			return cfg, method, err
		}
	}
	if d, ok := lookup(l.Config, "model", "dropout"); ok {
		cfg.Dropout, _ = toFloat(d)
	}
	cfg = cfg.WithMambaDefaults()
	embName := backbone.CheckpointPrefix + cfg.EmbeddingName()
	emb, ok := l.State[embName]
	if !ok || len(emb.Shape) != 2 {
		return cfg, method, fmt.Errorf("state_dict has no 2-D %s", embName)
	}
	cfg.Vocab, cfg.MaskIndex = emb.Shape[0], emb.Shape[0]-1
	method.Parameterization, _ = str("parameterization")
	if method.Parameterization == "" {
		method = DefaultMethod(cfg.Arch)
	}
	if t, ok := lookup(l.Config, "T"); ok {
		method.T, _ = t.(int)
	}
	if tc, ok := lookup(l.Config, "time_conditioning"); ok {
		method.TimeConditioning, _ = tc.(bool)
	}
	method.Noise = "loglinear"
	if n, ok := str("noise", "type"); ok {
		method.Noise = n
		if n == "linear" || n == "geometric" {
			lo, _ := lookup(l.Config, "noise", "sigma_min")
			hi, _ := lookup(l.Config, "noise", "sigma_max")
			method.SigmaMin, _ = toFloat(lo)
			method.SigmaMax, _ = toFloat(hi)
		}
	}
	return cfg, method, nil
}

// weights picks the EMA shadow params (by DIT.parameters() order) or the raw
// state_dict, checking every name and shape; the rotary buffer comes from the
// state_dict either way.
func (l *Lightning) weights(cfg backbone.Config, ema bool) (*backbone.Weights, error) {
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
	for _, name := range sortedNames(l.State) {
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

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}
