package backbone

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/tensors"
)

// InvFreqName is the rotary buffer the reference registers (not a parameter).
const InvFreqName = "rotary_emb.inv_freq"

// CheckpointPrefix is the prefix the released Lightning and Hugging Face checkpoints
// put on every backbone tensor name.
const CheckpointPrefix = "backbone."

// Weights is a host-side copy of a backbone's parameters, keyed by reference name.
type Weights struct {
	Config Config
	Data   map[string][]float32
	// InvFreq is the rotary buffer as stored in an imported checkpoint (kept so an
	// export gives back the same bytes); nil means "compute it" (RotaryInvFreq).
	InvFreq []float32
}

// NewWeights initialises parameters as the reference does (spec §3.2) from a seed.
func NewWeights(cfg Config, seed uint64) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d646c6d))
	w := &Weights{Config: cfg, Data: map[string][]float32{}}
	for _, s := range cfg.Specs() {
		v := make([]float32, s.Size())
		switch s.Init {
		case InitOne:
			for i := range v {
				v[i] = 1
			}
		case InitFanIn, InitEmbedding:
			bound := 1 / math.Sqrt(float64(s.FanIn))
			for i := range v {
				v[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
		w.Data[s.Name] = v
	}
	return w, nil
}

// RotaryInvFreq computes inv_freq_j = 1/10000^(2j/Dh) in float32 as torch does.
func RotaryInvFreq(headDim int) []float32 {
	out := make([]float32, headDim/2)
	for j := range out {
		e := float32(2*j) / float32(headDim)
		out[j] = 1 / float32(math.Pow(10000, float64(e)))
	}
	return out
}

// RotaryInvFreqOrDefault returns the stored buffer or the computed one.
func (w *Weights) RotaryInvFreqOrDefault() []float32 {
	if w.InvFreq != nil {
		return w.InvFreq
	}
	return RotaryInvFreq(w.Config.HeadDim())
}

// Tensors returns the parameters as float32 GoMLX tensors in Specs order.
func (w *Weights) Tensors() []*gtensors.Tensor { return w.TensorsAs(dtypes.Float32) }

// TensorsAs returns the parameters as GoMLX tensors of dtype dt (Float32 or
// Float64) in Specs order.
func (w *Weights) TensorsAs(dt dtypes.DType) []*gtensors.Tensor {
	specs := w.Config.Specs()
	out := make([]*gtensors.Tensor, len(specs))
	for i, s := range specs {
		v := w.Data[s.Name]
		if dt == dtypes.Float64 {
			v64 := make([]float64, len(v))
			for j, x := range v {
				v64[j] = float64(x)
			}
			out[i] = gtensors.FromFlatDataAndDimensions(v64, s.Shape...)
			continue
		}
		out[i] = gtensors.FromFlatDataAndDimensions(append([]float32(nil), v...), s.Shape...)
	}
	return out
}

// SetFromTensors copies GoMLX tensors (in Specs order, float32 or float64) back to
// the host copy.
func (w *Weights) SetFromTensors(ts []*gtensors.Tensor) error {
	specs := w.Config.Specs()
	if len(ts) != len(specs) {
		return fmt.Errorf("weights: got %d tensors, want %d", len(ts), len(specs))
	}
	for i, s := range specs {
		v, err := Float32s(ts[i])
		if err != nil {
			return fmt.Errorf("weights: %s: %w", s.Name, err)
		}
		w.Data[s.Name] = v
	}
	return nil
}

// Float32s copies a float32 or float64 tensor to a float32 slice.
func Float32s(t *gtensors.Tensor) ([]float32, error) {
	if t.DType() == dtypes.Float64 {
		v, err := gtensors.CopyFlatData[float64](t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, nil
	}
	return gtensors.CopyFlatData[float32](t)
}

// LoadWeights reads a backbone from a safetensors file laid out like the reference
// state dict, with or without the "backbone." prefix. Every parameter of cfg must be
// present with its exact shape; any other tensor (besides the rotary buffer) is an
// error naming it, so a checkpoint of another architecture or size never loads.
func LoadWeights(f *tensors.File, cfg Config) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	prefix := detectPrefix(f)
	w := &Weights{Config: cfg, Data: map[string][]float32{}}
	used := map[string]bool{}
	for _, s := range cfg.Specs() {
		name := prefix + s.Name
		info, ok := f.Info(name)
		if !ok {
			return nil, fmt.Errorf("load %s: missing parameter %q (shape %v) for a %s backbone", f.Name(), name, s.Shape, cfg.Arch)
		}
		if !slices.Equal(info.Shape, s.Shape) {
			return nil, fmt.Errorf("load %s: parameter %q has shape %v, want %v", f.Name(), name, info.Shape, s.Shape)
		}
		v, _, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", f.Name(), err)
		}
		w.Data[s.Name] = v
		used[name] = true
	}
	if info, ok := f.Info(prefix + InvFreqName); ok && cfg.Arch != GPT2 {
		if !slices.Equal(info.Shape, []int{cfg.HeadDim() / 2}) {
			return nil, fmt.Errorf("load %s: %q has shape %v, want [%d] (is n_heads %d right?)",
				f.Name(), info.Name, info.Shape, cfg.HeadDim()/2, cfg.Heads)
		}
		v, _, err := f.Float32(info.Name)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", f.Name(), err)
		}
		w.InvFreq = v
		used[info.Name] = true
	}
	var extra []string
	for _, info := range f.Tensors() {
		if cfg.Arch == GPT2 && gpt2Skipped(strings.TrimPrefix(info.Name, prefix)) {
			continue
		}
		if !used[info.Name] {
			extra = append(extra, info.Name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return nil, fmt.Errorf("load %s: %d tensor(s) not part of a %s backbone with this config, e.g. %q",
			f.Name(), len(extra), cfg.Arch, extra[0])
	}
	return w, nil
}

func detectPrefix(f *tensors.File) string {
	if _, ok := f.Info(CheckpointPrefix + "vocab_embed.embedding"); ok {
		return CheckpointPrefix
	}
	if _, ok := f.Info(GPT2Prefix + "wte.weight"); ok {
		return GPT2Prefix
	}
	return ""
}

// SafetensorsTensors lays the weights out as a PyTorch state dict (parameters in
// registration order, then the rotary buffer), each name prefixed with prefix.
func (w *Weights) SafetensorsTensors(prefix string) []tensors.Tensor {
	var out []tensors.Tensor
	for _, s := range w.Config.Specs() {
		out = append(out, tensors.FromFloat32(prefix+s.Name, s.Shape, w.Data[s.Name]))
	}
	if w.Config.Arch == GPT2 {
		return out // no rotary buffer
	}
	inv := w.RotaryInvFreqOrDefault()
	out = append(out, tensors.FromFloat32(prefix+InvFreqName, []int{len(inv)}, inv))
	return out
}

// InferConfig reads the sizes a safetensors state dict determines (V, D, C, N and
// the architecture). The head count is not visible in the shapes; the caller sets it.
func InferConfig(f *tensors.File) (Config, error) {
	prefix := detectPrefix(f)
	var c Config
	emb, ok := f.Info(prefix + "vocab_embed.embedding")
	if !ok || len(emb.Shape) != 2 {
		return c, fmt.Errorf("%s: no 2-D vocab_embed.embedding: not an MDLM backbone state dict", f.Name())
	}
	c.Vocab, c.Hidden = emb.Shape[0], emb.Shape[1]
	c.Arch = AR
	if s, ok := f.Info(prefix + "sigma_map.mlp.0.weight"); ok && len(s.Shape) == 2 {
		c.Arch, c.Cond = DiT, s.Shape[0]
	}
	for _, info := range f.Tensors() {
		rest, ok := strings.CutPrefix(info.Name, prefix+"blocks.")
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(rest, "%d.", &i); err == nil && i+1 > c.Blocks {
			c.Blocks = i + 1
		}
	}
	if inv, ok := f.Info(prefix + InvFreqName); ok && len(inv.Shape) == 1 && inv.Shape[0] > 0 {
		c.Heads = c.Hidden / (2 * inv.Shape[0]) // a hint; validated by the caller
	}
	c.MaskIndex = c.Vocab - 1
	return c, nil
}
