package layers

import (
	"math"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/layers/attention"
	"github.com/gomlx/gomlx/ml/nn"
)

// Linear is torch's nn.Linear: y = x Wᵀ + b with W stored [out, in] and x
// [..., in] (b may be nil). When W comes in a lower precision (bf16 mixed
// precision, the reference's autocast) the product runs in W's dtype and the
// result returns to x's dtype, the bias added in x's dtype.
//
// For inference it is GoMLX's nn.Dense (the backend's fused dense op where it
// has one). For training it is the product and the bias add as graph ops,
// differentiated as contract says: the Go backend's fused dense gradient
// (compute v0.1.14 FusedDenseVJP) transposes x and the cotangent element by
// element, 26% of the D128 step's CPU time (bench/README.md, "Upstream").
func Linear(mode Mode, x, w, b *Node) *Node {
	lowp := w.DType() != x.DType()
	xin := x
	if lowp {
		xin = ConvertDType(x, w.DType())
	}
	var y *Node
	if mode == Inference && !lowp {
		return nn.Dense(x, w, b, compute.DenseLayoutOutputsInput)
	} else if mode == Inference {
		y = nn.Dense(xin, w, nil, compute.DenseLayoutOutputsInput)
	} else {
		in := x.Shape().Dimensions[x.Rank()-1]
		y = contract(mode, Reshape(xin, -1, in), []int{1}, nil, w, []int{1}, nil) // [N, out]
		y = Reshape(y, append(slices.Clone(x.Shape().Dimensions[:x.Rank()-1]), w.Shape().Dimensions[0])...)
	}
	y = ConvertDType(y, x.DType())
	if b != nil {
		y = Add(y, ExpandLeftToRank(b, y.Rank()))
	}
	return y
}

// QKV is attention's input projection (models/dit.py: DDiTBlock.forward,
// attn_qkv, then the rearrange 'b s (three h d) -> b s three h d'): x
// [B, L, D] times W [3D, D] stored as nn.Linear's, no bias, split into q, k
// and v [B, L, H, Dh].
//
// For inference it is GoMLX's attention.QKVProjection (the backend's fused
// projection where it has one, which copies each row's thirds where a Slice
// copies element by element). For training it is Linear and three slices,
// whose gradient pads each third back to [B, L, 3D] and sums the three; with
// SplitQKV (training) the forward pass is the fused projection, and the
// gradient of Linear's output is the three cotangents concatenated (qkvTrain).
func QKV(mode Mode, x, w *Node, heads int) (q, k, v *Node) {
	dims := x.Shape().Dimensions
	B, L, D := dims[0], dims[1], dims[2]
	perHead := func(y *Node) *Node { return Reshape(y, B, L, heads, D/heads) }
	if w.DType() != x.DType() || (mode == Training && !uses(x.Graph(), SplitQKV)) {
		y := Linear(mode, x, w, nil)
		part := func(i int) *Node { return perHead(Slice(y, AxisRange(), AxisRange(), AxisRange(i*D, (i+1)*D))) }
		return part(0), part(1), part(2)
	}
	if mode == Training {
		q, k, v = qkvTrain(x, w)
	} else {
		q, k, v = attention.QKVProjection(x, Transpose(w, 0, 1), nil, nil, nil, D, D)
	}
	return perHead(q), perHead(k), perHead(v)
}

// qkvTrain is QKV's SplitQKV form: q, k, v [B, L, D] from the backend's fused
// projection, differentiated through a copy that only the backward pass reads
// (as contract's gradient is attached): Linear's product, then an identity
// whose gradient is the concatenation of the cotangents that the three slices
// after it record. The slices' own gradients (pads) are left unused, so the
// compiled graph has neither the forward slices nor the pads.
func qkvTrain(x, w *Node) (q, k, v *Node) {
	D := x.Shape().Dimensions[2]
	var cot [3]*Node
	decomposed := func() []*Node {
		y := Linear(Training, x, w, nil) // [B, L, 3D]
		yIn := IdentityWithCustomGradient(y, func(_, _ *Node) *Node {
			parts := make([]*Node, 3)
			for i, c := range cot {
				if parts[i] = c; c == nil { // a part without a gradient
					parts[i] = Zeros(x.Graph(), x.Shape())
				}
			}
			cot = [3]*Node{} // a later Gradient call records its own
			return Concatenate(parts, -1)
		})
		outs := make([]*Node, 3)
		for i := range outs {
			part := Slice(yIn, AxisRange(), AxisRange(), AxisRange(i*D, (i+1)*D))
			outs[i] = IdentityWithCustomGradient(part, func(_, v *Node) *Node {
				cot[i] = v
				return v
			})
		}
		return outs
	}
	fused := func() []*Node {
		q, k, v := BackendFusedAttentionQKVProjection(x, Transpose(w, 0, 1), nil, nil, nil, D, D)
		return []*Node{q, k, v}
	}
	outs, _ := InternalFusedOpCallerMulti(fused, decomposed, true)
	return outs[0], outs[1], outs[2]
}

// Normalize is F.layer_norm over the last axis without affine parameters:
// (x − mean)/√(var + eps), the variance biased.
func Normalize(x *Node, eps float64) *Node {
	centered := Sub(x, ReduceAndKeep(x, ReduceMean, -1))
	variance := ReduceAndKeep(Square(centered), ReduceMean, -1)
	return Mul(centered, Reciprocal(Sqrt(AddScalar(variance, eps)))) // 1/√: Rsqrt has no gradient in GoMLX
}

// LayerNorm is the reference's LayerNorm (models/dit.py: LayerNorm): F.layer_norm
// without affine, eps 1e-5, then times the learned weight [D] (no bias). For
// inference it is GoMLX's nn.LayerNorm (the backend's fused kernel where it
// has one); for training the same function from graph ops, whose gradient
// GoMLX would otherwise build from a second, decomposed copy.
func LayerNorm(mode Mode, x, weight *Node) *Node {
	if mode == Inference {
		return nn.LayerNorm(x, []int{x.Rank() - 1}, 1e-5, weight, nil, nil)
	}
	return Mul(Normalize(x, 1e-5), ExpandLeftToRank(weight, x.Rank()))
}

// Modulate is models/dit.py's modulate_fused: x·(1 + scale) + shift, with
// scale and shift [B, D] per sequence over x [B, L, D].
func Modulate(mode Mode, x, shift, scale *Node) *Node {
	L := x.Shape().Dimensions[1]
	return Add(Mul(x, overPositions(mode, OnePlus(scale), L)), overPositions(mode, shift, L))
}

// Gated is bias_dropout_add_scale without bias (models/dit.py): residual +
// gate·y, gate [B, D] per sequence over y [B, L, D].
func Gated(mode Mode, residual, gate, y *Node) *Node {
	return Add(residual, Mul(overPositions(mode, gate, y.Shape().Dimensions[1]), y))
}

// overPositions lays s [B, D] over L positions for a binary op with a
// [B, L, D] operand: [B, 1, D], which the op broadcasts, or with SpreadMid
// [B, L, D] itself, an outer product with ones (a batched matmul): the Go
// backend's binary ops walk a broadcast operand through a per-element index
// iterator (compute v0.1.14 ZipIterator, 15% of the D128 step's CPU time).
func overPositions(mode Mode, s *Node, L int) *Node {
	dims := s.Shape().Dimensions
	s3 := Reshape(s, dims[0], 1, dims[1])
	if !uses(s.Graph(), SpreadMid) {
		return s3
	}
	ones := Ones(s.Graph(), shapes.Make(s.DType(), dims[0], L, 1))
	return contract(mode, ones, []int{2}, []int{0}, s3, []int{1}, []int{0}) // [B, L, D]
}

// AdaLNModulate is modulate_fused(norm(x), shift, scale), the DiT block's
// adaLN input (DDiTBlock.forward) and DDitFinalLayer's.
func AdaLNModulate(mode Mode, x, weight, shift, scale *Node) *Node {
	return Modulate(mode, LayerNorm(mode, x, weight), shift, scale)
}

// GeluTanh is nn.GELU(approximate="tanh"), 0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³))).
// For inference it is GoMLX's GeluApproximate (the backend's fused kernel
// where it has one). For training it is the same function from graph ops,
// z·σ(2a) (0.5(1 + tanh a) = σ(2a)), differentiated by GoMLX: the Go
// backend's fused GELU gradient is wrong in compute v0.1.14 (bench/README.md,
// "Upstream"; TestUpstreamGeluApproximateGradient).
func GeluTanh(mode Mode, z *Node) *Node {
	if mode == Inference {
		return activation.GeluApproximate(z)
	}
	inner := MulScalar(Add(z, MulScalar(Mul(Mul(z, z), z), 0.044715)), 2*math.Sqrt(2/math.Pi))
	return Mul(z, Logistic(inner))
}

// LogSumExp over the last axis, [..., V] -> [...]: m + log Σⱼ exp(xⱼ − m)
// with m the row maximum, held constant (its gradient cancels).
func LogSumExp(x *Node) *Node {
	m := StopGradient(ReduceAndKeep(x, ReduceMax, -1))
	lse := Add(m, Log(ReduceAndKeep(Exp(Sub(x, m)), ReduceSum, -1)))
	return Squeeze(lse, -1)
}

// Rotary holds RoPE's tables for one forward pass (models/dit.py: Rotary):
// cos and sin of θ[p, j] = p·inv_freq_j, computed in float32 as the reference
// does and cast to the activations' dtype.
//
// The tables are laid out [L, H, Dh/2], repeated over the H heads (built once
// per head count, on the first Apply): a [1, L, H, Dh/2] operand is a leading
// broadcast over [B, L, H, Dh/2], which the Go backend's binary ops run as
// vector products, where a [1, L, 1, Dh/2] one is a middle-axis broadcast that
// they walk element by element through an index iterator (compute v0.1.14
// ZipIterator; bench/README.md, "Round 2026-12-05 afternoon"). The values are
// the same.
type Rotary struct {
	g       *Graph
	invFreq []float32
	L       int
	dt      dtypes.DType
	heads   int // the head count cos and sin are built for
	cos     *Node
	sin     *Node
	// RotateProduct's tables: [cos, cos] and [−sin, sin] [1, L, H, Dh] for
	// fullHeads heads, and the permutation [Dh, Dh].
	full      [2]*Node
	fullHeads int
	perm      *Node
}

// NewRotary holds the tables for sequence length L.
func NewRotary(g *Graph, invFreq []float32, L int, dt dtypes.DType) *Rotary {
	return &Rotary{g: g, invFreq: invFreq, L: L, dt: dt}
}

// tables returns cos and sin [L, H, Dh/2] for H heads.
func (r *Rotary) tables(heads int) (cos, sin *Node) {
	if r.cos == nil || r.heads != heads {
		half := len(r.invFreq)
		pos := Iota(r.g, shapes.Make(dtypes.Float32, r.L, heads, half), 0)
		theta := Mul(pos, Const(r.g, [][][]float32{{r.invFreq}}))
		r.heads, r.cos, r.sin = heads, ConvertDType(Cos(theta), r.dt), ConvertDType(Sin(theta), r.dt)
	}
	return r.cos, r.sin
}

// Apply is apply_rotary_pos_emb over the whole head (rotate_half): for u
// [B, L, H, Dh] = [u₁, u₂] it is [u₁ cos − u₂ sin, u₂ cos + u₁ sin].
//
// With RotateProduct it is u ⊙ [cos, cos] + (u·P) ⊙ [−sin, sin] with P the
// permutation [u₁, u₂] ↦ [u₂, u₁] as a [Dh, Dh] product (exact for finite u:
// one term of each sum is nonzero), in training and inference: the Go
// backend copies a slice element by element (compute v0.1.14
// execSliceGeneric), and the halves' slices, their concatenation and, in
// training, the slices' padded gradients cost 4-10% of the D128 forward pass
// and 3-5% of the D128 and demo steps (bench/README.md, "Round 2026-12-05
// night").
func (r *Rotary) Apply(mode Mode, u *Node) *Node {
	dims := u.Shape().Dimensions
	L, H, dh := dims[1], dims[2], dims[3]
	half := dh / 2
	if uses(u.Graph(), RotateProduct) {
		return r.applyProduct(mode, u)
	}
	cos, sin := r.tables(H)
	c, s := Reshape(cos, 1, L, H, half), Reshape(sin, 1, L, H, half)
	u1 := Slice(u, AxisRange(), AxisRange(), AxisRange(), AxisRange(0, half))
	u2 := Slice(u, AxisRange(), AxisRange(), AxisRange(), AxisRange(half, dh))
	return Concatenate([]*Node{Sub(Mul(u1, c), Mul(u2, s)), Add(Mul(u2, c), Mul(u1, s))}, 3)
}

// applyProduct is Apply's RotateProduct form.
func (r *Rotary) applyProduct(mode Mode, u *Node) *Node {
	dims := u.Shape().Dimensions
	L, H, dh := dims[1], dims[2], dims[3]
	half := dh / 2
	if r.perm == nil || r.fullHeads != H {
		cos, sin := r.tables(H)
		r.fullHeads = H
		r.full = [2]*Node{
			Reshape(Concatenate([]*Node{cos, cos}, 2), 1, L, H, dh),
			Reshape(Concatenate([]*Node{Neg(sin), sin}, 2), 1, L, H, dh),
		}
		perm := make([][]float32, dh)
		for j := range perm {
			perm[j] = make([]float32, dh)
			perm[j][(j+half)%dh] = 1 // (u·P)[j'] = u[(j'+half) mod Dh]
		}
		r.perm = ConvertDType(Const(r.g, perm), r.dt)
	}
	rot := contract(mode, u, []int{3}, nil, r.perm, []int{0}, nil)
	return Add(Mul(u, r.full[0]), Mul(rot, r.full[1]))
}

// maskedScore is what a causal mask writes: the most negative float32, whose
// softmax weight is exactly 0 as −∞'s is (every row keeps its diagonal), but
// which keeps the scores finite for softmax's gradient.
const maskedScore = -math.MaxFloat32

// Attention is scaled dot-product attention over heads (models/dit.py:
// DDiTBlock.forward's flash attention, non-causal; the AR model's causal):
// q, k, v [B, L, H, Dh] -> [B, L, H·Dh] in v's dtype. The products run in
// the inputs' dtype; scores and softmax are float32 when that is a 16-bit
// float (the reference's bf16 autocast).
func Attention(mode Mode, q, k, v *Node, causal bool) *Node {
	dims := q.Shape().Dimensions
	B, L, H, dh := dims[0], dims[1], dims[2], dims[3]
	sdt := q.DType()
	if sdt == dtypes.BFloat16 || sdt == dtypes.Float16 {
		sdt = dtypes.Float32
	}
	batch, pos := []int{0, 2}, 1 // q, k, v's batch axes (B, H) and position axis
	if mode == Training && uses(q.Graph(), HeadsLeading) {
		q, k, v = headsLeading(q), headsLeading(k), headsLeading(v)
		batch, pos = []int{0, 1}, 2
	}
	scores := contract(mode, q, []int{3}, batch, k, []int{3}, batch) // [B, H, L, L]
	scores = MulScalar(ConvertDType(scores, sdt), 1/math.Sqrt(float64(dh)))
	if causal {
		g := q.Graph()
		row := Iota(g, shapes.Make(dtypes.Int32, L, L), 0)
		col := Iota(g, shapes.Make(dtypes.Int32, L, L), 1)
		allowed := BroadcastToDims(Reshape(GreaterOrEqual(row, col), 1, 1, L, L), scores.Shape().Dimensions...)
		scores = Where(allowed, scores, BroadcastToDims(Scalar(g, scores.DType(), maskedScore), scores.Shape().Dimensions...))
	}
	probs := ConvertDType(softmax(mode, scores), v.DType())
	out := contract(mode, probs, []int{3}, []int{0, 1}, v, []int{pos}, batch) // [B, H, L, Dh]
	return Reshape(TransposeAllAxes(out, 0, 2, 1, 3), B, L, H*dh)
}

// headsLeading lays u [B, L, H, Dh] out as [B, H, L, Dh] (the HeadsLeading
// form, training only): one transpose whose result every product of Attention
// and every gradient reads. The Go backend's matmul wants its batch axes
// leading and otherwise transposes an operand inside each product, the forward
// pass's and again in each gradient (compute v0.1.14 dot.LayoutForDotGeneral;
// bench/README.md, "Round 2026-12-05 afternoon"). The plain form is u itself,
// the products taking (0, 2) as their batch axes.
func headsLeading(u *Node) *Node { return TransposeAllAxes(u, 0, 2, 1, 3) }

// softmax is Softmax over the last axis. In training, with SoftmaxGrad, it is
// the backend's fused kernel with the gradient written from its output,
// dx = y ⊙ (v − Σⱼ vⱼ yⱼ): GoMLX's Softmax would also build and run the
// decomposed softmax (max, exp, sum, division) to differentiate it.
func softmax(mode Mode, x *Node) *Node {
	if mode != Training || !uses(x.Graph(), SoftmaxGrad) {
		return Softmax(x, -1)
	}
	var y *Node
	grad := func(_, v *Node) *Node { return Mul(y, Sub(v, ReduceAndKeep(Mul(v, y), ReduceSum, -1))) }
	// The decomposed alternative is only the gradient's path (GoMLX builds it
	// first and sends the fused node's cotangent through it); its value is unused.
	out, fused := InternalFusedOpCaller(func() *Node { return BackendFusedSoftmax(x, x.Rank()-1) },
		func() *Node { return IdentityWithCustomGradient(x, grad) }, true)
	if !fused {
		return Softmax(x, -1)
	}
	y = out
	return y
}
