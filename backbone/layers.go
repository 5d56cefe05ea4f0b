package backbone

import (
	"math"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math

	"github.com/mdlm-go/mdlm/internal/fastgraph"
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

// Dropout draws keep masks for the residual branches. A nil *Dropout, or Rate 0,
// is the identity (evaluation mode). RNG is threaded through: read it back after
// the forward pass to carry the generator state to the next step.
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

// linear is torch's nn.Linear: y = x W^T + b with W stored [out, in]; x is [..., in].
// When W comes in a lower precision (bf16 mixed precision, see CastMatmulWeights),
// the matmul runs in W's dtype and the result returns to x's dtype.
func linear(x, w, b *Node) *Node {
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	flat := x // a [N, in] x stays the same node, so products that share it share its transposes (fastgraph)
	if x.Rank() != 2 {
		flat = Reshape(x, -1, in)
	}
	var y *Node
	switch {
	case w.DType() != x.DType():
		y = ConvertDType(fastgraph.MatMulT(ConvertDType(flat, w.DType()), w), x.DType())
		if b != nil {
			y = Add(y, fastgraph.SpreadLead(b, y.Shape().Dimensions[0]))
		}
	case b != nil:
		y = denseWithBias(flat, w, b)
	default:
		y = fastgraph.MatMulT(flat, w) // [N, out]
	}
	if x.Rank() == 2 {
		return y
	}
	out := append(append([]int(nil), dims[:len(dims)-1]...), w.Shape().Dimensions[0])
	return Reshape(y, out...)
}

// denseWithBias is x·Wᵀ + b for x [N, in], W [out, in]: the backend's fused
// dense op where it has one (the Go backend adds the bias row by row in place of
// a broadcasting add), the same graph ops otherwise. Its gradient comes from
// the decomposed graph, which needs only x and W, so training computes the
// product once, and the bias gradient as a product with ones (fastgraph).
func denseWithBias(x, w, b *Node) *Node {
	y, _ := InternalFusedOpCaller(
		func() *Node {
			return BackendFusedDense(x, w, b, compute.DenseConfig{WeightLayout: compute.DenseLayoutOutputsInput})
		},
		func() *Node { return Add(fastgraph.MatMulT(x, w), fastgraph.SpreadLead(b, x.Shape().Dimensions[0])) },
		true)
	return y
}

// layerNorm is the reference LayerNorm: F.layer_norm without affine (eps 1e-5, in
// float32), then an elementwise multiply by the learned weight (no bias).
// 1/sqrt is written as Div(1, Sqrt) because Rsqrt has no gradient in GoMLX v0.28.2.
func layerNorm(x, weight *Node) *Node {
	return Mul(normalize(x, 1e-5), spreadLast(weight, x))
}

// spreadLast broadcasts a [D] vector over x's leading axes, for a binary op
// with x [..., D] (fastgraph.SpreadLead).
func spreadLast(v, x *Node) *Node {
	dims := x.Shape().Dimensions
	return fastgraph.SpreadLead(v, dims[:len(dims)-1]...)
}

// layerNormInference is layerNorm through the backend's fused kernel where it
// has one: one pass over x instead of eight graph ops, four of them
// broadcasting. For graphs without gradients (eval, sampling): under a
// gradient the decomposed ops would be built and run as well, for the VJP.
func layerNormInference(x, weight *Node) *Node {
	y, _ := InternalFusedOpCaller(
		func() *Node { return BackendFusedLayerNorm(x, []int{x.Rank() - 1}, 1e-5, weight, nil) },
		func() *Node { return layerNorm(x, weight) },
		true)
	return y
}

// normalize is (x − mean)/sqrt(var + eps) over the last axis.
func normalize(x *Node, eps float64) *Node {
	centered, rstd := centerAndScale(x, eps)
	return Mul(centered, fastgraph.SpreadLast(rstd, x.Shape().Dimensions[x.Rank()-1]))
}

// centerAndScale returns x − mean [..., D] and 1/sqrt(var + eps) [..., 1] over
// the last axis.
func centerAndScale(x *Node, eps float64) (centered, rstd *Node) {
	d := x.Shape().Dimensions[x.Rank()-1]
	centered = Sub(x, fastgraph.SpreadLast(fastgraph.MeanLast(x), d))
	return centered, Reciprocal(Sqrt(AddScalar(fastgraph.MeanLast(Square(centered)), eps)))
}

// maskedScore is what causalMask writes: the most negative float32, whose
// softmax weight is exactly 0 as −∞'s is (every row keeps its diagonal), but
// which keeps the scores finite for fastgraph.SoftmaxLast's gradient.
const maskedScore = -math.MaxFloat32

// causalMask sets the scores [B, H, Lq, Lk] of keys after their query to
// maskedScore.
func causalMask(scores *Node) *Node {
	g, dims := scores.Graph(), scores.Shape().Dimensions
	L := dims[2]
	row := Iota(g, shapes.Make(dtypes.Int32, L, L), 0)
	col := Iota(g, shapes.Make(dtypes.Int32, L, L), 1)
	allowed := BroadcastToDims(Reshape(GreaterOrEqual(row, col), 1, 1, L, L), dims...)
	return Where(allowed, scores, BroadcastToDims(Scalar(g, scores.DType(), maskedScore), dims...))
}

// modulate is x·(1 + scale) + shift with scale and shift of shape [B, D]
// broadcast over L (modulate_fused in the reference).
func modulate(x, shift, scale *Node) *Node {
	L := x.Shape().Dimensions[1]
	return Add(Mul(x, fastgraph.SpreadMid(OnePlus(scale), L)), fastgraph.SpreadMid(shift, L))
}

// normModulate is modulate(layerNorm(x, weight), shift, scale), adaLN's
// normalised input. On the Go backend in training it is (x − mean)·f + shift
// with f = rstd ⊗ (weight·(1 + scale)) [B, L, D] one batched outer product of
// the per-position 1/√(var + eps) [B, L] and the per-sequence gain [B, D]:
// one multiply over [B, L, D] where layerNorm and modulate take three, so
// the backward pass has four fewer. Without training it is the fused
// LayerNorm (layerNormInference) and modulate; elsewhere the plain graph.
func normModulate(x, weight, shift, scale *Node, drop *Dropout) *Node {
	if drop == nil || !fastgraph.Native(x.Graph()) {
		return modulate(normFor(drop)(x, weight), shift, scale)
	}
	dims := x.Shape().Dimensions
	B, L, D := dims[0], dims[1], dims[2]
	centered, rstd := centerAndScale(x, 1e-5) // rstd [B, L, 1]
	gain := Reshape(Mul(fastgraph.SpreadLead(weight, B), OnePlus(scale)), B, 1, D)
	f := fastgraph.Contract(rstd, []int{2}, []int{0}, gain, []int{1}, []int{0}) // [B, L, D]
	return Add(Mul(centered, f), fastgraph.SpreadMid(shift, L))
}

// gated is x + gate·y, the adaLN gated residual: gate [B, D] broadcast over L.
func gated(x, gate, y *Node) *Node {
	return Add(x, Mul(fastgraph.SpreadMid(gate, x.Shape().Dimensions[1]), y))
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

// rotary holds RoPE's tables for one forward pass: cos and sin of θ[p, j] =
// p·inv_freq_j, each [L, Dh/2], and on the Go backend their spread to q and
// k's shape [B, L, H, Dh] (see applyRotary), built once for every block.
type rotary struct {
	cos, sin         *Node
	fullCos, fullSin *Node
}

// rotaryTables returns the tables, computed in float32 (as the reference
// does) and cast to dt.
func rotaryTables(g *Graph, invFreq []float32, length int, dt dtypes.DType) *rotary {
	pos := Iota(g, shapes.Make(dtypes.Float32, length, 1), 0)
	theta := Mul(pos, Const(g, [][]float32{invFreq}))
	return &rotary{cos: ConvertDType(Cos(theta), dt), sin: ConvertDType(Sin(theta), dt)}
}

// spread returns cos and sin doubled to [L, Dh] ([cos, cos]) and spread over
// heads and the batch: [B, L, H, Dh].
func (r *rotary) spread(B, H int) (cos, sin *Node) {
	if r.fullCos == nil || r.fullCos.Shape().Dimensions[0] != B || r.fullCos.Shape().Dimensions[2] != H {
		L, half := r.cos.Shape().Dimensions[0], r.cos.Shape().Dimensions[1]
		full := func(t *Node) *Node {
			doubled := Concatenate([]*Node{t, t}, 1)
			return Reshape(fastgraph.SpreadLead(fastgraph.SpreadMid(doubled, H), B), B, L, H, 2*half)
		}
		r.fullCos, r.fullSin = full(r.cos), full(r.sin)
	}
	return r.fullCos, r.fullSin
}

// applyRotary rotates u [B, L, H, Dh] by rotate-half RoPE over the whole head:
// u'_j = u_j cos θ_j − u_{j+Dh/2} sin θ_j and u'_{j+Dh/2} = u_{j+Dh/2} cos θ_j + u_j sin θ_j.
// On the Go backend it is u ⊙ [cos, cos] + rot(u) ⊙ [sin, sin] with
// rot(u) = [−u₂, u₁] a product with a ±1 permutation matrix (exact), the
// tables spread to u's shape: same-shape ops and a small matmul, where halves
// of u are per-element slices and their gradients zero-padded copies.
// Elsewhere (XLA, whose float32 matmuls may run in reduced precision) it is
// the halves and their concatenation.
func applyRotary(u *Node, r *rotary) *Node {
	dims := u.Shape().Dimensions
	B, L, H, dh := dims[0], dims[1], dims[2], dims[3]
	half := dh / 2
	if !fastgraph.Native(u.Graph()) {
		c, s := Reshape(r.cos, 1, L, 1, half), Reshape(r.sin, 1, L, 1, half)
		u1 := Slice(u, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, half))
		u2 := Slice(u, AxisRange(), AxisRange(), AxisRange(), AxisRange(half, dh))
		return Concatenate([]*Node{
			Sub(Mul(u1, c), Mul(u2, s)),
			Add(Mul(u2, c), Mul(u1, s)),
		}, 3)
	}
	cos, sin := r.spread(B, H)
	rot := fastgraph.Contract(u, []int{3}, nil, rotateHalf(u.Graph(), dh, u.DType()), []int{0}, nil)
	return Add(Mul(u, cos), Mul(rot, sin))
}

// rotateHalf is the [Dh, Dh] matrix R with u·R = [−u₂, u₁] (u = [u₁, u₂]).
func rotateHalf(g *Graph, dh int, dt dtypes.DType) *Node {
	half := dh / 2
	r := make([]float32, dh*dh)
	for j := 0; j < half; j++ {
		r[(j+half)*dh+j] = -1 // out_j = −u_{j+half}
		r[j*dh+j+half] = 1    // out_{j+half} = u_j
	}
	return ConvertDType(Reshape(Const(g, r), dh, dh), dt)
}

// attention runs multi-head attention with RoPE on q and k: x [B, L, D] ->
// [B, L, D] (before attn_out). The fused qkv weight's rows are laid out
// (3, H, Dh); q, k and v are three products with its row blocks, so the
// backward pass splits a weight-sized gradient rather than [B, L, 3D].
func attention(x, wqkv *Node, rope *rotary, heads int, causal bool) *Node {
	dims := x.Shape().Dimensions
	B, L, D := dims[0], dims[1], dims[2]
	dh := D / heads
	flat := Reshape(x, B*L, D)
	proj := func(i int) *Node {
		w := Slice(wqkv, AxisRange(i*D, (i+1)*D))
		return Reshape(linear(flat, w, nil), B, L, heads, dh)
	}
	q := applyRotary(proj(0), rope)
	k := applyRotary(proj(1), rope)
	v := proj(2)
	if mm := wqkv.DType(); mm != x.DType() { // bf16 mixed precision: attention matmuls in bf16, softmax in x's dtype
		q, k, v = ConvertDType(q, mm), ConvertDType(k, mm), ConvertDType(v, mm)
	}
	scores := MulScalar(ConvertDType(fastgraph.Contract(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}), x.DType()), 1/math.Sqrt(float64(dh))) // [B, H, L, L]
	if causal {
		scores = causalMask(scores)
	}
	probs := fastgraph.SoftmaxLast(scores)
	out := fastgraph.Contract(ConvertDType(probs, v.DType()), []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, L, Dh]
	out = ConvertDType(TransposeAllAxes(out, 0, 2, 1, 3), x.DType())                                           // [B, L, H, Dh]
	return Reshape(out, B, L, D)
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

// BatchShards is how a batch of b rows is cut into independent sub-graphs
// (fastgraph.Shards: two halves on the Go backend), except for DiMamba, whose
// selective scan is many small ops: there halves add more per-op overhead
// than they win in concurrency (demo-sized step 942-1119 ms whole against
// 983-1174 ms in halves, three alternating runs), so its batch stays whole.
func (c Config) BatchShards(g *Graph, b int) [][2]int {
	if c.Arch == DiMamba {
		return [][2]int{{0, b}}
	}
	return fastgraph.Shards(g, b)
}

// ByRows evaluates f on each of BatchShards' row ranges of the inputs (all
// [B, ...]) and joins its outputs along the first axis.
func (c Config) ByRows(inputs []*Node, f func(rows []*Node) *Node) *Node {
	shards := c.BatchShards(inputs[0].Graph(), inputs[0].Shape().Dimensions[0])
	return fastgraph.ByRows(shards, inputs, f)
}
