package backbone

import (
	"math"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math

	"github.com/mdlm-go/mdlm/internal/layers"
)

// Params maps reference parameter names to graph nodes.
type Params map[string]*Node

// ParamsFromNodes pairs nodes given in Specs order with their names.
func ParamsFromNodes(cfg Config, nodes []*Node) Params {
	p := make(Params, len(nodes))
	for i, s := range cfg.Specs() {
		p[s.Name] = nodes[i]
	}
	return p
}

// Dropout draws keep masks for the residual branches (training only). A nil
// *Dropout, or Rate 0, is the identity. RNG is threaded through: read it back
// after the forward pass to carry the generator state to the next step.
type Dropout struct {
	Rate float64
	RNG  *Node
}

// Apply is torch's F.dropout: zero with probability Rate, scale survivors by 1/(1-Rate).
func (d *Dropout) Apply(x *Node) *Node {
	if d == nil || d.Rate == 0 {
		return x
	}
	var u *Node
	d.RNG, u = RandomUniform(d.RNG, x.Shape())
	keep := GreaterOrEqual(u, Scalar(x.Graph(), x.DType(), d.Rate))
	return Where(keep, MulScalar(x, 1/(1-d.Rate)), ZerosLike(x))
}

func silu(x *Node) *Node { return Mul(x, Logistic(x)) }

// timestepEmbedding is TimestepEmbedder.timestep_embedding: for sigma [B],
// f_j = exp(-ln(10000)·j/half), a = σ·f, and [cos(a), sin(a)] of width 256.
func timestepEmbedding(sigma *Node) *Node {
	g := sigma.Graph()
	half := timestepFreqDim / 2
	freqs := make([]float32, half)
	for j := range freqs {
		freqs[j] = float32(math.Exp(-math.Log(10000) * float64(float32(j)) / float64(half)))
	}
	f := Const(g, [][]float32{freqs})                                  // [1, half]
	args := Mul(ExpandAxes(ConvertDType(sigma, dtypes.Float32), 1), f) // [B, half]
	return Concatenate([]*Node{Cos(args), Sin(args)}, 1)
}

// attention is DDiTBlock.forward's attention (and the AR block's, causal):
// qkv = attn_qkv(x) laid out (three, h, d), RoPE on q and k, scaled
// dot-product attention over heads: x [B, L, D] -> [B, L, D] (before
// attn_out). Under bf16 mixed precision the products run in bf16, softmax in
// float32.
func attention(mode layers.Mode, x, wqkv *Node, rope *layers.Rotary, heads int, causal bool) *Node {
	q, k, v := layers.QKV(mode, x, wqkv, heads)     // [B, L, H, Dh], in x's dtype
	q, k = rope.Apply(mode, q), rope.Apply(mode, k) // RoPE in x's dtype (autocast off)
	if mm := wqkv.DType(); mm != x.DType() {
		q, k, v = ConvertDType(q, mm), ConvertDType(k, mm), ConvertDType(v, mm)
	}
	return ConvertDType(layers.Attention(mode, q, k, v, causal), x.DType())
}

// CastMatmulWeights returns params whose block and output-layer matrices are cast
// to dt (e.g. bfloat16): the reference's bf16 autocast, where the blocks and the
// final layer run their matmuls in bf16 while the embedding, the timestep
// embedder, LayerNorm, softmax and the loss stay in float32. For DiMamba the
// Mamba projections run in dt too, while A_log (and so the scan, whose state
// the reference keeps in float32), D and the convolution stay in float32.
// Gradients flow back through the casts to the float32 master weights.
func CastMatmulWeights(p Params, dt dtypes.DType) Params {
	out := make(Params, len(p))
	for name, n := range p {
		keep := name == "vocab_embed.embedding" || name == dimambaEmb || strings.HasPrefix(name, "sigma_map.") ||
			strings.HasSuffix(name, ".A_log")
		if n.Rank() == 2 && !keep && n.DType() != dt {
			n = ConvertDType(n, dt)
		}
		out[name] = n
	}
	return out
}
