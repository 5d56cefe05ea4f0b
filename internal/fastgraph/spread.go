// Package fastgraph builds the graph pieces a transformer repeats (matrix
// products, broadcasts and sums over one axis, row maxima, softmax, GELU, the
// cut of a batch into independent halves) in the forms each GoMLX backend runs
// fastest, with the same values (to float32 rounding) and gradients.
//
// On the pure-Go backend (compute v0.1.2) a binary op whose operands differ
// in shape, a BroadcastInDim and a ReduceSum or ReduceMax walk their elements
// through a per-element index iterator, 3-10 times slower than a same-shape
// op or a matrix product of the same size; an explicit broadcast does not
// help, as the backend folds it back into the binary op. So there a broadcast
// is an outer product with a vector of ones (Contract, a SIMD matmul) followed
// by a same-shape op, and a sum is a product with ones. Contract's gradient
// also avoids the transposes GoMLX's DotGeneral gradient adds (operandGrad);
// as the gradient of a broadcast is a sum and that of a sum a broadcast, the
// backward pass gets the same forms; a transpose one operand needs is built
// once for every product it enters. The fused softmax and GELU kernels get
// gradients written from their outputs (vjp.go), GeluTanhTrain is the GELU
// whose gradient reuses its forward nodes (for graphs that take one), and
// batches are cut in two halves whose graphs run concurrently (rows.go). On other backends (XLA),
// where broadcasts fuse for free, the helpers return the plain graph: a
// reshape that the consuming binary op broadcasts, ReduceSum, ReduceMax,
// GoMLX's softmax, one shard.
package fastgraph

import (
	"sync/atomic"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Native reports whether g's backend is the pure-Go one, where the rewritten
// forms apply.
func Native(g *Graph) bool {
	if generic.Load() {
		return false
	}
	return g.Backend().String() == "go"
}

var generic atomic.Bool

// UseGenericForms makes graphs built from now on take the plain forms on every
// backend (what XLA runs), until the returned function restores the default:
// for tests and benchmarks that compare the two.
func UseGenericForms() (restore func()) {
	prev := generic.Swap(true)
	return func() { generic.Store(prev) }
}

func ones(g *Graph, x *Node, dims ...int) *Node {
	return Ones(g, shapes.Make(x.DType(), dims...))
}

// lastDim splits x's shape into the product of its leading axes and its last one.
func lastDim(x *Node) (n, d int) {
	dims := x.Shape().Dimensions
	d = dims[len(dims)-1]
	return x.Shape().Size() / d, d
}

// withLast returns x's dimensions with the last one replaced by d.
func withLast(x *Node, d int) []int {
	dims := append([]int(nil), x.Shape().Dimensions...)
	dims[len(dims)-1] = d
	return dims
}

// SumLast sums x [..., D] over its last axis, keeping it: [..., 1].
func SumLast(x *Node) *Node {
	if !Native(x.Graph()) {
		return ReduceAndKeep(x, ReduceSum, -1)
	}
	n, d := lastDim(x)
	y := Contract(Reshape(x, n, d), []int{1}, nil, ones(x.Graph(), x, d, 1), []int{0}, nil) // [N, 1]
	return Reshape(y, withLast(x, 1)...)
}

// MeanLast is SumLast divided by the last axis' size.
func MeanLast(x *Node) *Node {
	_, d := lastDim(x)
	return DivScalar(SumLast(x), float64(d))
}

// SpreadLast broadcasts v [..., 1] along its last axis to size d: [..., d] on
// the Go backend, v itself elsewhere (for a binary op with a [..., d] operand).
func SpreadLast(v *Node, d int) *Node {
	if !Native(v.Graph()) {
		return v
	}
	n := v.Shape().Size()
	y := Contract(Reshape(v, n, 1), []int{1}, nil, ones(v.Graph(), v, 1, d), []int{0}, nil) // [N, d]
	return Reshape(y, withLast(v, d)...)
}

// SpreadLead broadcasts w over new leading axes: [lead..., w's dims...] on
// the Go backend, w reshaped to [1..., w's dims...] elsewhere.
func SpreadLead(w *Node, lead ...int) *Node {
	dims := append(append([]int(nil), lead...), w.Shape().Dimensions...)
	if !Native(w.Graph()) {
		unit := make([]int, len(lead))
		for i := range unit {
			unit[i] = 1
		}
		return Reshape(w, append(unit, w.Shape().Dimensions...)...)
	}
	n := 1
	for _, d := range lead {
		n *= d
	}
	s := w.Shape().Size()
	y := Contract(ones(w.Graph(), w, n, 1), []int{1}, nil, Reshape(w, 1, s), []int{0}, nil) // [N, S]
	return Reshape(y, dims...)
}

// SpreadMid broadcasts s [B, D] over a new middle axis of size l: [B, l, D] on
// the Go backend, [B, 1, D] elsewhere (adaLN's per-sequence shift, scale and
// gate over positions).
func SpreadMid(s *Node, l int) *Node {
	dims := s.Shape().Dimensions
	b, d := dims[0], dims[1]
	s3 := Reshape(s, b, 1, d)
	if !Native(s.Graph()) {
		return s3
	}
	return Contract(ones(s.Graph(), s, b, l, 1), []int{2}, []int{0}, s3, []int{1}, []int{0}) // [B, l, D]
}

// MaxLast is the maximum of x [..., V] over its last axis, kept: [..., 1],
// without a gradient (callers use it as a stabilising shift). ReduceMax on
// every backend: on the Go backend a halving tree of elementwise Max ops
// measured slower (its slices copy element by element).
func MaxLast(x *Node) *Node {
	return StopGradient(ReduceAndKeep(x, ReduceMax, -1))
}
