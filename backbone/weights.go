package backbone

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/safetensors"
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

// NewWeights initialises parameters as the reference does (models/dit.py:
// EmbeddingLayer, DDiTBlock, DDitFinalLayer constructors) from a seed.
func NewWeights(cfg Config, seed uint64) (*Weights, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6d646c6d))
	w := &Weights{Config: cfg, Data: map[string][]float32{}}
	for _, s := range cfg.Specs() {
		v := make([]float32, s.Size())
		initParam(v, s, cfg, rng)
		w.Data[s.Name] = v
	}
	return w, nil
}

// initParam fills v as the reference initialises parameter s.
func initParam(v []float32, s Spec, cfg Config, rng *rand.Rand) {
	uniform := func(bound float64) {
		for i := range v {
			v[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	switch s.Init {
	case InitOne:
		for i := range v {
			v[i] = 1
		}
	case InitFanIn, InitEmbedding:
		uniform(1 / math.Sqrt(float64(s.FanIn)))
	case InitResidualOut:
		uniform(1 / math.Sqrt(float64(s.FanIn)) / math.Sqrt(float64(cfg.Blocks)))
	case InitNormal:
		for i := range v {
			v[i] = float32(0.02 * rng.NormFloat64())
		}
	case InitDtBias:
		// dt = exp(U·(ln 0.1 − ln 1e-3) + ln 1e-3) ≥ 1e-4, stored as softplus⁻¹(dt) = dt + ln(−expm1(−dt)).
		for i := range v {
			dt := math.Max(math.Exp(rng.Float64()*(math.Log(0.1)-math.Log(1e-3))+math.Log(1e-3)), 1e-4)
			v[i] = float32(dt + math.Log(-math.Expm1(-dt)))
		}
	case InitALog:
		n := s.Shape[len(s.Shape)-1]
		for i := range v {
			v[i] = float32(math.Log(float64(i%n + 1)))
		}
	}
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

// RotaryInvFreqOrDefault returns the stored buffer or the computed one (nil for
// the architectures without rotary embeddings).
func (w *Weights) RotaryInvFreqOrDefault() []float32 {
	if !w.Config.Rotary() {
		return nil
	}
	if w.InvFreq != nil {
		return w.InvFreq
	}
	return RotaryInvFreq(w.Config.HeadDim())
}

// Tensors returns the parameters as float32 GoMLX tensors in Specs order.
func (w *Weights) Tensors() []*tensors.Tensor { return w.TensorsAs(dtypes.Float32) }

// TensorsAs returns the parameters as GoMLX tensors of dtype dt (Float32 or
// Float64) in Specs order.
func (w *Weights) TensorsAs(dt dtypes.DType) []*tensors.Tensor {
	specs := w.Config.Specs()
	out := make([]*tensors.Tensor, len(specs))
	for i, s := range specs {
		v := w.Data[s.Name]
		if dt == dtypes.Float64 {
			v64 := make([]float64, len(v))
			for j, x := range v {
				v64[j] = float64(x)
			}
			out[i] = tensors.FromFlatDataAndDimensions(v64, s.Shape...)
			continue
		}
		out[i] = tensors.FromFlatDataAndDimensions(v, s.Shape...) // copies v
	}
	return out
}

// SetFromTensors copies GoMLX tensors (in Specs order, float32 or float64) back to
// the host copy.
func (w *Weights) SetFromTensors(ts []*tensors.Tensor) error {
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
func Float32s(t *tensors.Tensor) ([]float32, error) {
	if t.DType() == dtypes.Float64 {
		v, err := tensors.CopyFlatData[float64](t)
		if err != nil {
			return nil, err
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out, nil
	}
	return tensors.CopyFlatData[float32](t)
}

// LoadWeights reads a backbone from a safetensors file laid out like the reference
// state dict, with or without the "backbone." prefix. Every parameter of cfg must be
// present with its exact shape; any other tensor (besides the rotary buffer) is an
// error naming it, so a checkpoint of another architecture or size never loads.
func LoadWeights(f *safetensors.File, cfg Config) (*Weights, error) {
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
	if err := loadTied(f, prefix, cfg, w, used); err != nil {
		return nil, err
	}
	if info, ok := f.Info(prefix + InvFreqName); ok && cfg.Rotary() {
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

// loadTied accepts the state dict's second names of tied parameters, which must
// hold the same values as the parameter they name.
func loadTied(f *safetensors.File, prefix string, cfg Config, w *Weights, used map[string]bool) error {
	for _, t := range cfg.TiedParams() {
		name := prefix + t.Name
		if _, ok := f.Info(name); !ok {
			continue
		}
		v, shape, err := f.Float32(name)
		if err != nil {
			return fmt.Errorf("load %s: %w", f.Name(), err)
		}
		src := w.Data[t.Source]
		if !slices.Equal(v, src) {
			return fmt.Errorf("load %s: %q (shape %v) is tied to %q in the reference but holds different values",
				f.Name(), name, shape, prefix+t.Source)
		}
		used[name] = true
	}
	return nil
}

func detectPrefix(f *safetensors.File) string {
	for _, first := range []string{"vocab_embed.embedding", dimambaEmb} {
		if _, ok := f.Info(CheckpointPrefix + first); ok {
			return CheckpointPrefix
		}
	}
	if _, ok := f.Info(GPT2Prefix + "wte.weight"); ok {
		return GPT2Prefix
	}
	return ""
}

// SafetensorsTensors lays the weights out as a PyTorch state dict (parameters in
// registration order, then tied second names, then the rotary buffer), each name
// prefixed with prefix.
func (w *Weights) SafetensorsTensors(prefix string) []safetensors.Tensor {
	var out []safetensors.Tensor
	shapes := map[string][]int{}
	for _, s := range w.Config.Specs() {
		out = append(out, safetensors.FromFloat32(prefix+s.Name, s.Shape, w.Data[s.Name]))
		shapes[s.Name] = s.Shape
	}
	for _, t := range w.Config.TiedParams() {
		out = append(out, safetensors.FromFloat32(prefix+t.Name, shapes[t.Source], w.Data[t.Source]))
	}
	if !w.Config.Rotary() {
		return out // no rotary buffer
	}
	inv := w.RotaryInvFreqOrDefault()
	out = append(out, safetensors.FromFloat32(prefix+InvFreqName, []int{len(inv)}, inv))
	return out
}

// InferConfig reads the sizes a safetensors state dict determines (V, D, C, N and
// the architecture). The head count is not visible in the shapes; the caller sets it.
func InferConfig(f *safetensors.File) (Config, error) {
	prefix := detectPrefix(f)
	if _, ok := f.Info(prefix + dimambaEmb); ok {
		return inferDiMamba(f, prefix)
	}
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
	c.Blocks = countBlocks(f, prefix+"blocks.")
	if inv, ok := f.Info(prefix + InvFreqName); ok && len(inv.Shape) == 1 && inv.Shape[0] > 0 {
		c.Heads = c.Hidden / (2 * inv.Shape[0]) // a hint; validated by the caller
	}
	c.MaskIndex = c.Vocab - 1
	return c, nil
}

// inferDiMamba reads a DiMamba state dict's sizes from its shapes.
func inferDiMamba(f *safetensors.File, prefix string) (Config, error) {
	c := Config{Arch: DiMamba}
	shape := func(name string, rank int) ([]int, error) {
		info, ok := f.Info(prefix + name)
		if !ok || len(info.Shape) != rank {
			return nil, fmt.Errorf("%s: no %d-D %q: not a DiMamba state dict", f.Name(), rank, prefix+name)
		}
		return info.Shape, nil
	}
	l0 := dimambaLayer(0) + "mixer.mamba_fwd."
	for _, q := range []struct {
		name string
		rank int
		set  func(s []int)
	}{
		{dimambaEmb, 2, func(s []int) { c.Vocab, c.Hidden = s[0], s[1] }},
		{"sigma_map.mlp.0.weight", 2, func(s []int) { c.Cond = s[0] }},
		{l0 + "A_log", 2, func(s []int) { c.DState = s[1] }},
		{l0 + "conv1d.weight", 3, func(s []int) { c.DConv = s[2] }},
		{l0 + "dt_proj.weight", 2, func(s []int) { c.DtRank = s[1] }},
		{l0 + "in_proj.weight", 2, func(s []int) { c.Expand = s[0] / (2 * max(1, s[1])) }},
	} {
		s, err := shape(q.name, q.rank)
		if err != nil {
			return c, err
		}
		q.set(s)
	}
	c.Blocks = countBlocks(f, prefix+dimambaBody+"layers.")
	c.MaskIndex, c.Dropout = c.Vocab-1, 0.1
	return c, nil
}

// countBlocks is one more than the largest i among tensors named <blocks>i.*.
func countBlocks(f *safetensors.File, blocks string) int {
	n := 0
	for _, info := range f.Tensors() {
		rest, ok := strings.CutPrefix(info.Name, blocks)
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(rest, "%d.", &i); err == nil && i+1 > n {
			n = i + 1
		}
	}
	return n
}
