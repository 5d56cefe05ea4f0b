package backbone

// GPT-2 (Radford et al. 2019) as Hugging Face's GPT2LMHeadModel computes it: the
// generative-perplexity scorer of the MDLM reference (gpt2-large by default,
// diffusion.py: compute_generative_perplexity). Learned position embeddings;
// pre-LN blocks whose LayerNorms have weight and bias; a fused c_attn
// projection with bias; attention scaled by 1/sqrt(Dh) under a causal mask;
// gelu_new (tanh GELU); a final ln_f; the output head tied to wte.
//
// Names and layouts are the hub's (openai-community/gpt2 model.safetensors):
// Conv1D weights are stored [in, out], so x·W needs no transpose, and a
// checkpoint's tensors export back byte for byte.
//
//	wte.weight [V, D]   wpe.weight [P, D]
//	h.{i}.ln_1.weight, .bias [D]
//	h.{i}.attn.c_attn.weight [D, 3D], .bias [3D]
//	h.{i}.attn.c_proj.weight [D, D], .bias [D]
//	h.{i}.ln_2.weight, .bias [D]
//	h.{i}.mlp.c_fc.weight [D, 4D], .bias [4D]
//	h.{i}.mlp.c_proj.weight [4D, D], .bias [D]
//	ln_f.weight, .bias [D]

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/gomlx/compute"
	gomlxattention "github.com/gomlx/gomlx/ml/layers/attention"
	"github.com/gomlx/gomlx/ml/nn"

	"github.com/mdlm-go/mdlm/internal/layers"

	"github.com/mdlm-go/mdlm/safetensors"
)

// GPT2 is Hugging Face's GPT2LMHeadModel, used to score samples.
const GPT2 Arch = "gpt2"

// GPT2Prefix is the prefix some hub files put on every GPT-2 tensor name.
const GPT2Prefix = "transformer."

func (c Config) gpt2Specs() []Spec {
	D, V, P := c.Hidden, c.Vocab, c.Positions
	conv := func(name string, in, out int) []Spec {
		return []Spec{{name + ".weight", []int{in, out}, InitFanIn, in}, {name + ".bias", []int{out}, InitZero, in}}
	}
	norm := func(name string) []Spec {
		return []Spec{{name + ".weight", []int{D}, InitOne, D}, {name + ".bias", []int{D}, InitZero, D}}
	}
	specs := []Spec{{"wte.weight", []int{V, D}, InitEmbedding, D}, {"wpe.weight", []int{P, D}, InitEmbedding, D}}
	for i := 0; i < c.Blocks; i++ {
		p := fmt.Sprintf("h.%d.", i)
		specs = append(specs, norm(p+"ln_1")...)
		specs = append(specs, conv(p+"attn.c_attn", D, 3*D)...)
		specs = append(specs, conv(p+"attn.c_proj", D, D)...)
		specs = append(specs, norm(p+"ln_2")...)
		specs = append(specs, conv(p+"mlp.c_fc", D, 4*D)...)
		specs = append(specs, conv(p+"mlp.c_proj", 4*D, D)...)
	}
	return append(specs, norm("ln_f")...)
}

// gpt2Skipped are hub tensors that are not parameters: the causal-mask buffers
// of older files and the output head, which is tied to wte.
func gpt2Skipped(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") || name == "lm_head.weight"
}

// GPT2Logits is GPT2LMHeadModel's forward pass: ids [B, L] (L ≤ n_positions,
// positions 0..L-1) give logits [B, L, V]. Right padding needs no attention
// mask: under the causal mask it never reaches a real position.
func GPT2Logits(cfg Config, p Params, ids *Node) *Node {
	L := ids.Shape().Dimensions[1]
	pos := Slice(p["wpe.weight"], AxisRange(0, L))                             // [L, D]
	x := Add(Gather(p["wte.weight"], ExpandAxes(ids, -1)), ExpandAxes(pos, 0)) // [B, L, D]
	eps := cfg.LayerNormEps
	for i := 0; i < cfg.Blocks; i++ {
		b := fmt.Sprintf("h.%d.", i)
		a := layerNormAffine(x, p[b+"ln_1.weight"], p[b+"ln_1.bias"], eps)
		a = causalAttention(a, p[b+"attn.c_attn.weight"], p[b+"attn.c_attn.bias"], cfg.Heads)
		x = Add(x, conv1D(a, p[b+"attn.c_proj.weight"], p[b+"attn.c_proj.bias"]))
		m := layerNormAffine(x, p[b+"ln_2.weight"], p[b+"ln_2.bias"], eps)
		m = layers.GeluTanh(layers.Inference, conv1D(m, p[b+"mlp.c_fc.weight"], p[b+"mlp.c_fc.bias"])) // gelu_new
		x = Add(x, conv1D(m, p[b+"mlp.c_proj.weight"], p[b+"mlp.c_proj.bias"]))
	}
	x = layerNormAffine(x, p["ln_f.weight"], p["ln_f.bias"], eps)
	return layers.Linear(layers.Inference, x, p["wte.weight"], nil) // tied head: x·wteᵀ
}

// conv1D is the hub's Conv1D: x·W + b with W stored [in, out].
func conv1D(x, w, b *Node) *Node {
	return nn.Dense(x, w, b, compute.DenseLayoutInputOutputs)
}

// layerNormAffine is nn.LayerNorm with weight, bias and eps.
func layerNormAffine(x, weight, bias *Node, eps float64) *Node {
	return nn.LayerNorm(x, []int{x.Rank() - 1}, eps, weight, bias, nil)
}

// causalAttention is the block's attention before c_proj: c_attn (Conv1D,
// W [D, 3D], b [3D]) laid out q | k | v, each H heads of Dh, then causal
// attention: x [B, L, D] -> [B, L, D]. The projection and its split are
// GoMLX's attention.QKVProjection (the backend's fused one where it has one).
func causalAttention(x, w, b *Node, heads int) *Node {
	dims := x.Shape().Dimensions
	B, L, D := dims[0], dims[1], dims[2]
	bias := func(i int) *Node { return Slice(b, AxisRange(i*D, (i+1)*D)) }
	q, k, v := gomlxattention.QKVProjection(x, w, bias(0), bias(1), bias(2), D, D)
	perHead := func(u *Node) *Node { return Reshape(u, B, L, heads, D/heads) }
	return layers.Attention(layers.Inference, perHead(q), perHead(k), perHead(v), true)
}

// GPT2Config reads a hub GPT-2 config.json (GPT2Config keys), refusing what
// this implementation does not compute, with errors naming the key.
func GPT2Config(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	var hf struct {
		ModelType  string   `json:"model_type"`
		NEmbd      int      `json:"n_embd"`
		NHead      int      `json:"n_head"`
		NLayer     int      `json:"n_layer"`
		NPositions int      `json:"n_positions"`
		VocabSize  int      `json:"vocab_size"`
		Eps        *float64 `json:"layer_norm_epsilon"`
		Activation string   `json:"activation_function"`
		Tie        *bool    `json:"tie_word_embeddings"`
	}
	if err := json.Unmarshal(raw, &hf); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if hf.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("%s: model_type %q, want gpt2", path, hf.ModelType)
	}
	if hf.Activation != "" && hf.Activation != "gelu_new" {
		return Config{}, fmt.Errorf("%s: activation_function %q: only gelu_new is implemented", path, hf.Activation)
	}
	if hf.Tie != nil && !*hf.Tie {
		return Config{}, fmt.Errorf("%s: tie_word_embeddings false: only a head tied to wte is implemented", path)
	}
	c := Config{Arch: GPT2, Vocab: hf.VocabSize, Hidden: hf.NEmbd, Heads: hf.NHead, Blocks: hf.NLayer,
		Positions: hf.NPositions, Length: hf.NPositions, LayerNormEps: 1e-5}
	if hf.Eps != nil {
		c.LayerNormEps = *hf.Eps
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadGPT2 reads a hub GPT-2 repository directory: config.json and
// model.safetensors (names with or without "transformer.", lm_head.weight
// optional, mask buffers skipped).
func LoadGPT2(dir string) (*Weights, error) {
	cfg, err := GPT2Config(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	f, err := safetensors.OpenMmap(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return LoadWeights(f, cfg)
}
