// Package backbone holds the MDLM denoiser networks of the reference: the DiT
// (models/dit.py: DIT, DDiTBlock, DDitFinalLayer, TimestepEmbedder, Rotary), the
// causal AR transformer (models/autoregressive.py) and the bidirectional Mamba
// DiMamba (models/dimamba.py: DiMamba; see dimamba.go), plus the GPT-2 scorer,
// written as GoMLX graphs over explicitly named parameters.
//
// DiMamba's selective scan (scan.go) is a chunked scan over L built from GoMLX
// ops: chunks solved one after another, each by a log-depth associative scan,
// the state carried between them. On an accelerator the chunks are 64 positions
// and gradient-checkpointed, so the backward pass keeps only chunk boundaries and
// inputs: at tiny-dimamba (D 512, 14 blocks, L 1024) about 256 MiB per sequence
// for all 28 scans plus 48 MiB for the chunk being recomputed, against 35 GiB if
// every level of every state were kept. On the pure-Go backend the chunks are
// short and not recomputed, which is faster there.
//
// Parameter names are the PyTorch state-dict names of the reference (the released
// OpenWebText checkpoint adds a "backbone." prefix), so loading a checkpoint is one
// table lookup per tensor with a shape check: see Specs and Weights.
//
// Shape legend: B batch, L sequence length, V model vocabulary
// (mask included), D hidden size, H heads, Dh = D/H head size, C cond_dim.
package backbone

import (
	"fmt"
	"sort"
	"strings"
)

// Arch names a backbone architecture.
type Arch string

const (
	// DiT is the bidirectional diffusion transformer with adaLN conditioning
	// (models/dit.py: DIT).
	DiT Arch = "dit"
	// AR is the causal transformer baseline (models/autoregressive.py: AR): DiT
	// blocks without adaLN.
	AR Arch = "ar"
)

// Archs lists the architectures, for messages.
var Archs = []Arch{DiT, AR, DiMamba, GPT2}

// Config sizes a backbone. The JSON names follow the reference's config.json.
type Config struct {
	Arch   Arch `json:"arch"`
	Vocab  int  `json:"vocab_size"`  // V, including [MASK]
	Hidden int  `json:"hidden_size"` // D
	Heads  int  `json:"n_heads"`     // H; D/H must be even for rotate-half RoPE
	Blocks int  `json:"n_blocks"`    // N
	Cond   int  `json:"cond_dim"`    // C, width of the timestep embedder (DiT only)
	Length int  `json:"length"`      // L the model is trained at (RoPE tables are built per call)
	// Dropout is applied on the two residual branches in training only (0.1 in the reference).
	Dropout float64 `json:"dropout"`
	// MaskIndex is the [MASK] id (V-1 when the tokenizer has none; 50257 for GPT-2).
	MaskIndex int `json:"mask_index"`
	// Positions and LayerNormEps size the GPT-2 scorer (n_positions,
	// layer_norm_epsilon); the diffusion backbones use rotary positions and 1e-5.
	Positions    int     `json:"n_positions,omitempty"`
	LayerNormEps float64 `json:"layer_norm_epsilon,omitempty"`
	// DState, DConv, Expand and DtRank size DiMamba's Mamba layers (the
	// reference's d_state 16, d_conv 4, expand 2, dt_rank ceil(D/16));
	// WithMambaDefaults fills them.
	DState int `json:"d_state,omitempty"`
	DConv  int `json:"d_conv,omitempty"`
	Expand int `json:"expand,omitempty"`
	DtRank int `json:"dt_rank,omitempty"`
}

// Sizes of the reference's configs/model/*.yaml (all with cond_dim 128, dropout 0.1).
// A preset that names an Arch (tiny-dimamba) is for that architecture only.
var presets = map[string]Config{
	"tiny":         {Hidden: 512, Heads: 8, Blocks: 8, Cond: 128},
	"small":        {Hidden: 768, Heads: 12, Blocks: 12, Cond: 128},
	"medium":       {Hidden: 1024, Heads: 16, Blocks: 24, Cond: 128},
	"tiny-dimamba": {Arch: DiMamba, Hidden: 512, Blocks: 14, Cond: 128},
}

// PresetNames lists the named sizes.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns a named size (tiny, small, medium, tiny-dimamba) for the given
// architecture, vocabulary and length, with the reference's dropout 0.1 and mask
// at V-1.
func Preset(name string, arch Arch, vocab, length int) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown model config %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	if c.Arch != "" && c.Arch != arch {
		return Config{}, fmt.Errorf("model config %q is a %s, not a %s backbone", name, c.Arch, arch)
	}
	if c.Arch == "" && arch == DiMamba {
		return Config{}, fmt.Errorf("model config %q has no %s sizes (use tiny-dimamba or custom)", name, arch)
	}
	c.Arch, c.Vocab, c.Length, c.Dropout, c.MaskIndex = arch, vocab, length, 0.1, vocab-1
	c = c.WithMambaDefaults()
	return c, c.Validate()
}

// HeadDim is D/H (0 for the attention-free DiMamba).
func (c Config) HeadDim() int {
	if c.Heads == 0 {
		return 0
	}
	return c.Hidden / c.Heads
}

// EmbeddingName is the token embedding's parameter name.
func (c Config) EmbeddingName() string {
	switch c.Arch {
	case DiMamba:
		return dimambaEmb
	case GPT2:
		return "wte.weight"
	}
	return "vocab_embed.embedding"
}

// Rotary says whether the architecture uses rotary position embeddings.
func (c Config) Rotary() bool { return c.Arch == DiT || c.Arch == AR }

// WithMambaDefaults fills DiMamba's unset Mamba sizes with the reference's
// (d_state 16, d_conv 4, expand 2, dt_rank ceil(D/16)); other architectures
// are returned unchanged.
func (c Config) WithMambaDefaults() Config {
	if c.Arch != DiMamba {
		return c
	}
	if c.DState == 0 {
		c.DState = 16
	}
	if c.DConv == 0 {
		c.DConv = 4
	}
	if c.Expand == 0 {
		c.Expand = 2
	}
	if c.DtRank == 0 {
		c.DtRank = (c.Hidden + 15) / 16
	}
	return c
}

// Validate checks sizes, naming the offending field.
func (c Config) Validate() error {
	switch c.Arch {
	case DiT, AR, GPT2, DiMamba:
	default:
		return fmt.Errorf("model config: arch %q is not one of %v", c.Arch, Archs)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.Vocab}, {"hidden_size", c.Hidden}, {"n_blocks", c.Blocks}} {
		if f.v <= 0 {
			return fmt.Errorf("model config: %s must be positive, got %d", f.name, f.v)
		}
	}
	if c.Arch == DiMamba {
		return c.validateDiMamba()
	}
	if c.Heads <= 0 {
		return fmt.Errorf("model config: n_heads must be positive, got %d", c.Heads)
	}
	if c.Arch == DiT && c.Cond <= 0 {
		return fmt.Errorf("model config: cond_dim must be positive for the DiT, got %d", c.Cond)
	}
	if c.Hidden%c.Heads != 0 {
		return fmt.Errorf("model config: n_heads %d does not divide hidden_size %d", c.Heads, c.Hidden)
	}
	if c.Arch == GPT2 {
		if c.Positions <= 0 {
			return fmt.Errorf("model config: n_positions must be positive for GPT-2, got %d", c.Positions)
		}
		if c.LayerNormEps <= 0 {
			return fmt.Errorf("model config: layer_norm_epsilon must be positive for GPT-2, got %g", c.LayerNormEps)
		}
		return nil // no rotary embedding, no [MASK], no dropout (a scorer)
	}
	if c.HeadDim()%2 != 0 {
		return fmt.Errorf("model config: head size %d (hidden_size/n_heads) must be even for rotary embeddings", c.HeadDim())
	}
	return c.validateDiffusion()
}

// validateDiffusion checks what every denoiser shares: [MASK] and dropout.
func (c Config) validateDiffusion() error {
	if c.MaskIndex < 0 || c.MaskIndex >= c.Vocab {
		return fmt.Errorf("model config: mask_index %d outside the vocabulary [0, %d)", c.MaskIndex, c.Vocab)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		return fmt.Errorf("model config: dropout %g must be in [0, 1)", c.Dropout)
	}
	return nil
}

// timestepFreqDim is the width of the sinusoidal timestep features (frequency_embedding_size).
const timestepFreqDim = 256

// InitKind says how a parameter is initialised (models/dit.py: the module
// constructors' zero_ and kaiming_uniform_ calls, else PyTorch's defaults).
type InitKind int

const (
	InitZero        InitKind = iota // adaLN modulation and the output layer
	InitOne                         // LayerNorm weights
	InitFanIn                       // PyTorch Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
	InitEmbedding                   // Kaiming-uniform a=sqrt(5) with fan_in = D: U(-1/sqrt(D), 1/sqrt(D))
	InitNormal                      // N(0, 0.02²): DiMamba's embedding (Mamba's _init_weights)
	InitResidualOut                 // U(±1/sqrt(fan_in))/sqrt(n_blocks): Mamba's out_proj (GPT-2 rescaling)
	InitDtBias                      // softplus⁻¹ of dt log-uniform in [1e-3, 0.1], floored at 1e-4
	InitALog                        // A_log[d, n] = log(n+1): S4D-real
)

// Spec names one parameter, its shape ([out, in] for Linear weights; GPT-2's
// Conv1D weights are [in, out]), its initialisation and the fan-in used for the
// bound.
type Spec struct {
	Name  string
	Shape []int
	Init  InitKind
	FanIn int
}

// Size is the number of elements.
func (s Spec) Size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Specs lists every trainable parameter in PyTorch registration order (the order of
// backbone.parameters(), which the reference's EMA shadow list follows,
// models/ema.py: ExponentialMovingAverage).
// The rotary inv_freq buffer is not a parameter and is not listed.
func (c Config) Specs() []Spec {
	switch c.Arch {
	case GPT2:
		return c.gpt2Specs()
	case DiMamba:
		return c.dimambaSpecs()
	}
	D, C, V := c.Hidden, c.Cond, c.Vocab
	linear := func(name string, out, in int, bias bool, init InitKind) []Spec {
		s := []Spec{{name + ".weight", []int{out, in}, init, in}}
		if bias {
			s = append(s, Spec{name + ".bias", []int{out}, init, in})
		}
		return s
	}
	specs := []Spec{{"vocab_embed.embedding", []int{V, D}, InitEmbedding, D}}
	if c.Arch == DiT {
		specs = append(specs, linear("sigma_map.mlp.0", C, timestepFreqDim, true, InitFanIn)...)
		specs = append(specs, linear("sigma_map.mlp.2", C, C, true, InitFanIn)...)
	}
	for i := 0; i < c.Blocks; i++ {
		p := fmt.Sprintf("blocks.%d.", i)
		specs = append(specs, Spec{p + "norm1.weight", []int{D}, InitOne, D})
		specs = append(specs, linear(p+"attn_qkv", 3*D, D, false, InitFanIn)...)
		specs = append(specs, linear(p+"attn_out", D, D, false, InitFanIn)...)
		specs = append(specs, Spec{p + "norm2.weight", []int{D}, InitOne, D})
		specs = append(specs, linear(p+"mlp.0", 4*D, D, true, InitFanIn)...)
		specs = append(specs, linear(p+"mlp.2", D, 4*D, true, InitFanIn)...)
		if c.Arch == DiT {
			specs = append(specs, linear(p+"adaLN_modulation", 6*D, C, true, InitZero)...)
		}
	}
	specs = append(specs, Spec{"output_layer.norm_final.weight", []int{D}, InitOne, D})
	specs = append(specs, linear("output_layer.linear", V, D, true, InitZero)...)
	if c.Arch == DiT {
		specs = append(specs, linear("output_layer.adaLN_modulation", 2*D, C, true, InitZero)...)
	}
	return specs
}

// NumParams is the trainable parameter count.
func (c Config) NumParams() int {
	n := 0
	for _, s := range c.Specs() {
		n += s.Size()
	}
	return n
}
