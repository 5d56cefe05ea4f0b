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
	"archive/zip"
	"bytes"
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
	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
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
// truncated one, or a pickle it cannot decode is an error naming the file.
func ReadLightning(path string) (*Lightning, error) {
	if err := checkZip(path); err != nil {
		return nil, fmt.Errorf("lightning checkpoint %s: %w", path, err)
	}
	obj, err := pytorch.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(r)
		u.FindClass = func(module, name string) (any, error) { return &pyClass{Module: module, Name: name}, nil }
		return u
	})
	if err != nil {
		return nil, fmt.Errorf("lightning checkpoint %s: data.pkl: %w", path, err)
	}
	top, ok := obj.(*types.Dict)
	if !ok {
		return nil, fmt.Errorf("lightning checkpoint %s: top-level object is %T, want a dict", path, obj)
	}
	l := &Lightning{Path: path, State: map[string]Float32Tensor{}}
	sd, ok := top.Get("state_dict")
	if !ok {
		return nil, fmt.Errorf("lightning checkpoint %s: no state_dict", path)
	}
	if err := eachItem(sd, func(k, v any) error {
		name, _ := k.(string)
		t, err := materialise(v)
		if err != nil {
			return fmt.Errorf("state_dict[%q]: %w", name, err)
		}
		l.State[name] = t
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lightning checkpoint %s: %w", path, err)
	}
	if ema, ok := top.Get("ema"); ok {
		if err := l.readEMA(ema); err != nil {
			return nil, fmt.Errorf("lightning checkpoint %s: ema: %w", path, err)
		}
	}
	if gs, ok := top.Get("global_step"); ok {
		l.GlobalStep, _ = gs.(int)
	}
	if hp, ok := top.Get("hyper_parameters"); ok {
		if cfg, ok := itemGet(hp, "config"); ok {
			if m, ok := plain(cfg).(map[string]any); ok {
				l.Config = m
			}
		}
	}
	return l, nil
}

func (l *Lightning) readEMA(ema any) error {
	sp, ok := itemGet(ema, "shadow_params")
	if !ok {
		return fmt.Errorf("no shadow_params")
	}
	list, ok := sp.(*types.List)
	if !ok {
		return fmt.Errorf("shadow_params is %T, want a list", sp)
	}
	for i := 0; i < list.Len(); i++ {
		t, err := materialise(list.Get(i))
		if err != nil {
			return fmt.Errorf("shadow_params[%d]: %w", i, err)
		}
		l.EMA = append(l.EMA, t)
	}
	if d, ok := itemGet(ema, "decay"); ok {
		l.EMADecay, _ = d.(float64)
	}
	if n, ok := itemGet(ema, "num_updates"); ok {
		l.EMAUpdates, _ = n.(int)
	}
	return nil
}

// checkZip refuses a file that is not a readable zip archive with a data.pkl
// whose opcodes scan cleanly (scanPickle).
func checkZip(path string) error {
	r, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("not a torch.save zip archive (truncated, or saved by torch < 1.6?): %w", err)
	}
	defer r.Close()
	for _, f := range r.File {
		if f.Name != "data.pkl" && !strings.HasSuffix(f.Name, "/data.pkl") {
			continue
		}
		if f.UncompressedSize64 > maxPickle {
			return fmt.Errorf("%s: %d bytes, more than a checkpoint's pickle (%d)", f.Name, f.UncompressedSize64, maxPickle)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxPickle))
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if err := scanPickle(data); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		return nil
	}
	return fmt.Errorf("zip archive without data.pkl: not a torch.save checkpoint")
}

// maxPickle bounds data.pkl: tensors live in separate records, so even a
// large model's pickle is a few MB.
const maxPickle = 256 << 20

// scanPickle walks the opcodes of a pickle of protocol 2 to 5 without
// building anything, and refuses an unknown opcode, a protocol outside 2-5, or
// an argument whose length field runs past the data. The decoder trusts
// length fields when it allocates, so this keeps a damaged or hostile file
// from asking for gigabytes.
func scanPickle(data []byte) error {
	fixed := map[byte]int{'K': 1, 'q': 1, 'h': 1, 0x82: 1, 'M': 2, 0x83: 2, 'J': 4, 'r': 4, 'j': 4, 0x84: 4, 'G': 8}
	sized := map[byte]int{'U': 1, 0x8c: 1, 'C': 1, 0x8a: 1, 'T': 4, 'X': 4, 'B': 4, 0x8b: 4, 0x8d: 8, 0x8e: 8, 0x96: 8}
	lines := map[byte]int{'I': 1, 'L': 1, 'S': 1, 'V': 1, 'F': 1, 'P': 1, 'g': 1, 'p': 1, 'c': 2, 'i': 2}
	const noArg = "(.012NRbaesu}dl]t)\x85\x86\x87\x88\x89\x81\x92\x93\x94\x8f\x90\x91Qo\x97\x98"
	for i := 0; i < len(data); {
		op := data[i]
		at := i
		i++
		switch {
		case op == 0x80: // PROTO
			if i >= len(data) {
				return fmt.Errorf("pickle: truncated at offset %d", at)
			}
			if v := data[i]; v < 2 || v > 5 {
				return fmt.Errorf("pickle: protocol %d at offset %d, want 2 to 5", v, at)
			}
			i++
		case op == 0x95: // FRAME: an 8-byte length, then inline opcodes
			i += 8
		case fixed[op] > 0:
			i += fixed[op]
		case sized[op] > 0:
			w := sized[op]
			if i+w > len(data) {
				return fmt.Errorf("pickle: truncated at offset %d", at)
			}
			var n uint64
			for k := w - 1; k >= 0; k-- {
				n = n<<8 | uint64(data[i+k])
			}
			i += w
			if n > uint64(len(data)-i) {
				return fmt.Errorf("pickle: opcode 0x%02x at offset %d claims %d bytes, %d remain", op, at, n, len(data)-i)
			}
			i += int(n)
		case lines[op] > 0:
			for k := 0; k < lines[op]; k++ {
				nl := bytes.IndexByte(data[i:], '\n')
				if nl < 0 {
					return fmt.Errorf("pickle: truncated at offset %d", at)
				}
				i += nl + 1
			}
		case strings.IndexByte(noArg, op) >= 0:
			if op == '.' {
				return nil
			}
		default:
			return fmt.Errorf("pickle: unknown opcode 0x%02x at offset %d", op, at)
		}
		if i > len(data) {
			return fmt.Errorf("pickle: truncated at offset %d", at)
		}
	}
	return fmt.Errorf("pickle: no STOP opcode (truncated)")
}

// materialise copies a pickled tensor into row-major float32, honouring its
// storage offset and strides (views into a shared storage).
func materialise(v any) (Float32Tensor, error) {
	t, ok := v.(*pytorch.Tensor)
	if !ok {
		return Float32Tensor{}, fmt.Errorf("%T is not a tensor", v)
	}
	var src []float32
	switch s := t.Source.(type) {
	case *pytorch.FloatStorage:
		src = s.Data
	case *pytorch.HalfStorage:
		src = s.Data
	case *pytorch.BFloat16Storage:
		src = s.Data
	case *pytorch.DoubleStorage:
		src = make([]float32, len(s.Data))
		for i, x := range s.Data {
			src[i] = float32(x)
		}
	case *pytorch.LongStorage:
		src = make([]float32, len(s.Data))
		for i, x := range s.Data {
			src[i] = float32(x)
		}
	default:
		return Float32Tensor{}, fmt.Errorf("storage %T is not supported", t.Source)
	}
	n := 1
	for _, d := range t.Size {
		n *= d
	}
	if len(t.Stride) != len(t.Size) {
		return Float32Tensor{}, fmt.Errorf("%d strides for %d dimensions", len(t.Stride), len(t.Size))
	}
	out := Float32Tensor{Shape: append([]int(nil), t.Size...), Data: make([]float32, n)}
	idx := make([]int, len(t.Size))
	for i := 0; i < n; i++ {
		off := t.StorageOffset
		for d, x := range idx {
			off += x * t.Stride[d]
		}
		if off < 0 || off >= len(src) {
			return Float32Tensor{}, fmt.Errorf("element %v at storage offset %d outside its storage of %d", idx, off, len(src))
		}
		out.Data[i] = src[off]
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < t.Size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

// pyClass is a Python class Go does not know; calling it makes a pyObject.
type pyClass struct{ Module, Name string }

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

// itemGet looks a key up in a dict, an ordered dict or a generic object's
// items, state or attributes.
func itemGet(v any, key string) (any, bool) {
	var found any
	ok := false
	eachItem(v, func(k, val any) error {
		if s, _ := k.(string); s == key && !ok {
			found, ok = val, true
		}
		return nil
	})
	return found, ok
}

// eachItem calls fn for every key/value of a pickled mapping.
func eachItem(v any, fn func(k, v any) error) error {
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
			if err := eachItem(m.Items, fn); err != nil {
				return err
			}
		}
		if m.State != nil {
			return eachItem(m.State, fn)
		}
	default:
		return fmt.Errorf("%T is not a mapping", v)
	}
	return nil
}

// plain turns pickled values into Go maps, slices and scalars. omegaconf's
// DictConfig and ListConfig keep their values under _content in their state,
// each leaf an AnyNode (or a typed node) whose state holds _val.
func plain(v any) any {
	switch x := v.(type) {
	case *pyObject:
		if content, ok := itemGet(x, "_content"); ok {
			return plain(content)
		}
		if val, ok := itemGet(x, "_val"); ok {
			return plain(val)
		}
		if x.List != nil {
			return plain(types.NewListFromSlice(x.List))
		}
		return plainMap(x)
	case *types.Dict, *types.OrderedDict:
		return plainMap(x)
	case *types.List:
		return plainSeq(x.Len(), x.Get)
	case *types.Tuple:
		return plainSeq(x.Len(), x.Get)
	}
	return v
}

func plainMap(v any) map[string]any {
	out := map[string]any{}
	eachItem(v, func(k, val any) error {
		if s, ok := k.(string); ok {
			out[s] = plain(val)
		}
		return nil
	})
	return out
}

func plainSeq(n int, get func(int) any) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = plain(get(i))
	}
	return out
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
