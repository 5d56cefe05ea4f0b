package torchckpt

// What a Lightning checkpoint's top-level dict holds, as mdlm reads it. The
// pickle is decoded by github.com/nlpodyssey/gopickle; objects of classes Go
// cannot know (omegaconf's DictConfig, a transformers tokenizer, Lightning
// callbacks) become generic objects that keep their constructor arguments,
// state and items, so the config's values can still be read (values.go).

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

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

// Read reads a .ckpt file. A file that is not a zip archive, a truncated one,
// or a pickle it cannot decode is an error naming the file; so is one whose
// sizes, shapes or nesting exceed what the file can hold (the limits are in
// the package documentation).
func Read(path string) (*Lightning, error) {
	l, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("lightning checkpoint %s: %w", path, err)
	}
	return l, nil
}

func read(path string) (*Lightning, error) {
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
	if err := l.readState(a, top); err != nil {
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

// readState materialises every tensor of state_dict.
func (l *Lightning) readState(a *torchArchive, top *types.Dict) error {
	sd, ok := top.Get("state_dict")
	if !ok {
		return fmt.Errorf("no state_dict")
	}
	var w walker
	return w.eachItem(sd, 0, func(k, v any) error {
		name, _ := k.(string)
		t, err := a.materialise(v)
		if err != nil {
			return fmt.Errorf("state_dict[%q]: %w", name, err)
		}
		l.State[name] = t
		return nil
	})
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

// readEMA reads ema.shadow_params, decay and num_updates.
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

// IsArchive reports whether path looks like a torch.save checkpoint: a
// regular file named *.ckpt, *.pt or *.pth, or a zip archive (torch.save's
// format).
func IsArchive(path string) bool {
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
