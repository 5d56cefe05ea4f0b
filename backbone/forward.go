package backbone

import (
	"fmt"

	"github.com/mdlm-go/mdlm/internal/layers"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Forward runs the backbone: indices [B, L] (int) and, for the DiT and DiMamba,
// sigma [B] (float32; the caller passes zeros when the model is not
// time-conditioned) give raw logits [B, L, V] (DiT, models/dit.py: DIT.forward;
// DiMamba, models/dimamba.py: DiMamba.forward) or, for the AR model,
// log-probabilities [B, L, V] with the [MASK] logit forced to −1000
// (models/autoregressive.py: AR.forward); for GPT-2,
// log-probabilities [B, L, V].
// invFreq is the rotary buffer; mode says whether a gradient will be taken;
// drop may be nil (no dropout).
func Forward(cfg Config, p Params, invFreq []float32, indices, sigma *Node, mode layers.Mode, drop *Dropout) *Node {
	switch cfg.Arch {
	case DiT:
		return forwardDiT(cfg, p, invFreq, indices, sigma, mode, drop)
	case AR:
		return forwardAR(cfg, p, invFreq, indices, mode, drop)
	case DiMamba:
		return forwardDiMamba(cfg, p, indices, sigma, mode, drop)
	case GPT2:
		return LogSoftmax(GPT2Logits(cfg, p, indices), -1)
	}
	panic(fmt.Sprintf("backbone: unknown arch %q", cfg.Arch))
}

func embed(p Params, indices *Node) *Node {
	return layers.Embed(p["vocab_embed.embedding"], indices) // [B, L, D]
}

// forwardDiT is models/dit.py: DIT.forward.
func forwardDiT(cfg Config, p Params, invFreq []float32, indices, sigma *Node, mode layers.Mode, drop *Dropout) *Node {
	x := embed(p, indices)
	c := timestepCondition(mode, p, sigma, x.DType()) // [B, C]
	rope := layers.NewRotary(x.Graph(), invFreq, x.Shape().Dimensions[1], x.DType())
	D := cfg.Hidden
	for i := 0; i < cfg.Blocks; i++ { // DDiTBlock.forward
		b := fmt.Sprintf("blocks.%d.", i)
		mod := layers.Linear(mode, c, p[b+"adaLN_modulation.weight"], p[b+"adaLN_modulation.bias"]) // [B, 6D]
		chunk := func(k int) *Node { return Slice(mod, AxisRange(), AxisRange(k*D, (k+1)*D)) }
		shiftMSA, scaleMSA, gateMSA := chunk(0), chunk(1), chunk(2)
		shiftMLP, scaleMLP, gateMLP := chunk(3), chunk(4), chunk(5)

		a := layers.AdaLNModulate(mode, x, p[b+"norm1.weight"], shiftMSA, scaleMSA)
		a = attention(mode, a, p[b+"attn_qkv.weight"], rope, cfg.Heads, false)
		x = layers.Gated(mode, x, gateMSA, drop.Apply(layers.Linear(mode, a, p[b+"attn_out.weight"], nil)))

		m := layers.AdaLNModulate(mode, x, p[b+"norm2.weight"], shiftMLP, scaleMLP)
		x = layers.Gated(mode, x, gateMLP, drop.Apply(mlp(mode, p, b, m)))
	}
	// DDitFinalLayer.forward
	mod := layers.Linear(mode, c, p["output_layer.adaLN_modulation.weight"], p["output_layer.adaLN_modulation.bias"]) // [B, 2D]
	shift := Slice(mod, AxisRange(), AxisRange(0, D))
	scale := Slice(mod, AxisRange(), AxisRange(D, 2*D))
	x = layers.AdaLNModulate(mode, x, p["output_layer.norm_final.weight"], shift, scale)
	return layers.Linear(mode, x, p["output_layer.linear.weight"], p["output_layer.linear.bias"])
}

// mlp is the block's nn.Sequential(Linear, GELU(approximate="tanh"), Linear).
func mlp(mode layers.Mode, p Params, b string, x *Node) *Node {
	x = layers.GeluTanh(mode, layers.Linear(mode, x, p[b+"mlp.0.weight"], p[b+"mlp.0.bias"]))
	return layers.Linear(mode, x, p[b+"mlp.2.weight"], p[b+"mlp.2.bias"])
}

// ARMaskLogit is the value the AR backbone writes into the [MASK] logit.
const ARMaskLogit = -1000.0

func forwardAR(cfg Config, p Params, invFreq []float32, indices *Node, mode layers.Mode, drop *Dropout) *Node {
	x := embed(p, indices)
	rope := layers.NewRotary(x.Graph(), invFreq, x.Shape().Dimensions[1], x.DType())
	for i := 0; i < cfg.Blocks; i++ {
		b := fmt.Sprintf("blocks.%d.", i)
		a := attention(mode, layers.LayerNorm(mode, x, p[b+"norm1.weight"]), p[b+"attn_qkv.weight"], rope, cfg.Heads, true)
		x = Add(x, drop.Apply(layers.Linear(mode, a, p[b+"attn_out.weight"], nil)))
		x = Add(x, drop.Apply(mlp(mode, p, b, layers.LayerNorm(mode, x, p[b+"norm2.weight"]))))
	}
	x = layers.LayerNorm(mode, x, p["output_layer.norm_final.weight"])
	logits := layers.Linear(mode, x, p["output_layer.linear.weight"], p["output_layer.linear.bias"])
	logits = SetLastAxisValue(logits, cfg.MaskIndex, ARMaskLogit)
	return LogSoftmax(logits, -1)
}

// SetLastAxisValue overwrites entry idx of the last axis with a constant.
func SetLastAxisValue(x *Node, idx int, value float64) *Node {
	g := x.Graph()
	dims := x.Shape().Dimensions
	V := dims[len(dims)-1]
	sel := Equal(Iota(g, shapesOf(V, x.Rank()), x.Rank()-1), Scalar(g, dtypesInt32, idx))
	sel = BroadcastToDims(sel, dims...)
	return Where(sel, BroadcastToDims(Scalar(g, x.DType(), value), dims...), x)
}
