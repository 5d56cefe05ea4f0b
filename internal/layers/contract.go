package layers

import (
	"fmt"
	"slices"
	"weak"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// dotAxes are the contracting and batch axes a Contract node was built with.
type dotAxes struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

// contract is DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
// (output [batch axes..., lhs free axes..., rhs free axes...]) whose gradient,
// in training with ProductGrad, builds the same products as GoMLX's in the
// operand layouts the Go backend's matmul takes with the fewest transposed
// elements (operandGrad): GoMLX's DotGeneral gradient transposes its
// operands and results into a canonical order, a third of the D128 step's
// CPU time on compute v0.1.14 (bench/README.md, "Graph forms"). A product
// where one operand has no free axes keeps GoMLX's gradient.
//
// The gradient is attached without touching GoMLX's VJP table, on a copy of
// the product that only the backward pass reads: in it the output passes
// through an identity that records its cotangent, and the operands through
// identities whose gradients are the products built from it (GoMLX
// differentiates a node after every node built from it, so the cotangent is
// recorded first). The forward pass runs the plain DotGeneral, whose gradient
// GoMLX takes through that copy (InternalFusedOpCaller's decomposed
// alternative); the copy's forward nodes and its DotGeneral's own gradient
// are unused and left out of the compiled graph. (With the identities in the
// forward pass, the Go backend copied every operand that had another
// consumer, every weight among them: 4-5% of the demo step.)
func contract(mode Mode, lhs *Node, lhsContract, lhsBatch []int, rhs *Node, rhsContract, rhsBatch []int) *Node {
	if mode != Training || !uses(lhs.Graph(), ProductGrad) {
		return DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
	}
	lhs, lhsContract = unitContracted(lhs, lhsContract, lhsBatch, true)
	rhs, rhsContract = unitContracted(rhs, rhsContract, rhsBatch, false)
	if len(freeAxes(lhs.Rank(), lhsContract, lhsBatch)) == 0 || len(freeAxes(rhs.Rank(), rhsContract, rhsBatch)) == 0 {
		return DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
	}
	countUse(lhs)
	countUse(rhs)
	ax := dotAxes{
		lhsContract: slices.Clone(lhsContract), lhsBatch: slices.Clone(lhsBatch),
		rhsContract: slices.Clone(rhsContract), rhsBatch: slices.Clone(rhsBatch),
	}
	// grads are built once per cotangent recorded: each Gradient call records
	// its own (the output's identity is differentiated first) and both
	// operands' gradients are built from it.
	var grads []*Node
	var cot, gradsCot *Node
	gradOf := func(i int) func(_, _ *Node) *Node {
		return func(_, _ *Node) *Node {
			if gradsCot != cot {
				grads, gradsCot = dotVJP(lhs, rhs, ax, cot), cot
			}
			return grads[i]
		}
	}
	withGrad := func() *Node {
		l := IdentityWithCustomGradient(lhs, gradOf(0))
		r := IdentityWithCustomGradient(rhs, gradOf(1))
		y := DotGeneral(l, lhsContract, lhsBatch, r, rhsContract, rhsBatch)
		return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
			cot = v
			return v
		})
	}
	plain := func() *Node { return DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch) }
	y, _ := InternalFusedOpCaller(plain, withGrad, true)
	return y
}

// freeAxes lists the axes of a rank-r operand that are neither contracted nor
// batch axes, in increasing order.
func freeAxes(r int, contract, batch []int) []int {
	var free []int
	for a := range r {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			free = append(free, a)
		}
	}
	return free
}

// seq is [from, from+1, ..., from+n-1].
func seq(from, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = from + i
	}
	return s
}

// operand is one side of a DotGeneral: the node, its contracted and batch axes.
type operand struct {
	x               *Node
	contract, batch []int
}

// dotVJP returns the gradients of DotGeneral(lhs, rhs) for the cotangent v
// ([batch, lhs free, rhs free]).
func dotVJP(lhs, rhs *Node, ax dotAxes, v *Node) []*Node {
	lhsFree := freeAxes(lhs.Rank(), ax.lhsContract, ax.lhsBatch)
	rhsFree := freeAxes(rhs.Rank(), ax.rhsContract, ax.rhsBatch)
	nb := len(ax.lhsBatch)
	vLHS, vRHS := seq(nb, len(lhsFree)), seq(nb+len(lhsFree), len(rhsFree))
	return []*Node{
		operandGrad(operand{lhs, ax.lhsContract, ax.lhsBatch}, lhsFree, v, nb, vLHS, vRHS, operand{rhs, ax.rhsContract, ax.rhsBatch}, rhsFree),
		operandGrad(operand{rhs, ax.rhsContract, ax.rhsBatch}, rhsFree, v, nb, vRHS, vLHS, operand{lhs, ax.lhsContract, ax.lhsBatch}, lhsFree),
	}
}

// operandGrad is the gradient of one operand ("this"): v's axes vOther (the
// other operand's free axes, at least one) contracted with the other operand's
// free axes.
//
// The Go backend's matmul takes the left operand with its contracted axis last
// and the right one with it first or last (after leading batch axes); any
// other layout it transposes both operands into (GoMLX's gradient for a linear
// layer's weight, v [N, out] contracted over N, transposes v and x). And
// GoMLX's gradient transposes each result back to the operand's axis order,
// identity or not. Here the product is built in one of two orders, whichever
// transposes fewer elements: v on the left (v transposed when vOther are not
// its last axes), or the other operand on the left (transposed when its free
// axes are not last, as for the ones of an outer product); the result is
// transposed only when its order is not the operand's.
func operandGrad(this operand, thisFree []int, v *Node, nb int, vThis, vOther []int, other operand, otherFree []int) *Node {
	oo := other.x
	if oo.DType() != v.DType() {
		oo = ConvertDType(oo, v.DType())
	}
	otherRest := freeAxes(other.x.Rank(), otherFree, other.batch) // other's contracted axes, ascending
	// pairedThis maps each of other's contracted axes to this operand's axis.
	pairedThis := func(oa int) int { return this.contract[slices.Index(other.contract, oa)] }

	// Order A: v on the left: [batch, vThis, otherRest].
	vPerm := append(append(seq(0, nb), vThis...), vOther...)
	costA := 0
	if !isIdentity(vPerm) {
		costA += v.Shape().Size()
	}
	permA := make([]int, this.x.Rank())
	fill(permA, this.batch, 0)
	fill(permA, thisFree, nb)
	for i, oa := range otherRest {
		permA[pairedThis(oa)] = nb + len(thisFree) + i
	}
	if !isIdentity(permA) {
		costA += this.x.Shape().Size()
	}
	if !rhsLayoutOK(other.x.Rank(), otherFree, other.batch) {
		costA += v.Shape().Size() + other.x.Shape().Size()
	}

	// Order B: other on the left: [batch, otherRest, vThis]. Other's transpose
	// is shared by the gradients of every product other enters (q, k and v's
	// weights share their input's): its cost is divided among them, it is free
	// once built, and a tie goes to this order.
	oPerm := append(append(slices.Clone(other.batch), otherRest...), otherFree...)
	costB := 0
	if !isIdentity(oPerm) && cachedTranspose(oo, oPerm) == nil {
		costB += other.x.Shape().Size() / max(1, productUses.get(other.x))
	}
	permB := make([]int, this.x.Rank())
	fill(permB, this.batch, 0)
	for i, oa := range otherRest {
		permB[pairedThis(oa)] = nb + i
	}
	fill(permB, thisFree, nb+len(otherRest))
	if !isIdentity(permB) {
		costB += this.x.Shape().Size()
	}
	if !rhsLayoutOK(v.Rank(), vOther, seq(0, nb)) {
		costB += v.Shape().Size() + other.x.Shape().Size()
	}

	// A 2D operand whose contracted axis goes last is padded first where
	// that axis is a multiple of 1024 (tokenPad), the other operand along the
	// axis it pairs with: the contraction is unchanged, and the transpose
	// half as long.
	pad := func(transposed bool) {
		if !transposed || nb != 0 || len(vOther) != 1 || v.Rank() != 2 || oo.Rank() != 2 {
			return
		}
		if n := tokenPad(v.Shape().Dimensions[vOther[0]]); n > 0 {
			v, oo = padAxis(v, vOther[0], n), padShared(oo, otherFree[0], n)
		}
	}
	var g *Node
	if costA < costB {
		pad(!isIdentity(vPerm))
		vv := v
		if !isIdentity(vPerm) {
			vv = transpose(v, vPerm)
		}
		g = dot(vv, seq(nb+len(vThis), len(vOther)), seq(0, nb), oo, otherFree, other.batch)
		g = transposeUnlessIdentity(g, permA)
	} else {
		pad(!isIdentity(oPerm))
		if !isIdentity(oPerm) {
			oo = transposeShared(oo, oPerm)
		}
		// v's vOther axes pair with otherFree in order, which is now oo's tail.
		g = dot(oo, seq(nb+len(otherRest), len(otherFree)), seq(0, nb), v, vOther, seq(0, nb))
		g = transposeUnlessIdentity(g, permB)
	}
	if g.DType() != this.x.DType() {
		g = ConvertDType(g, this.x.DType())
	}
	return g
}

// dot is DotGeneral with operands whose contracted axes all have size 1 (outer
// products) reshaped into the layout the Go backend's matmul takes directly.
func dot(lhs *Node, lhsContract, lhsBatch []int, rhs *Node, rhsContract, rhsBatch []int) *Node {
	lhs, lhsContract = unitContracted(lhs, lhsContract, lhsBatch, true)
	rhs, rhsContract = unitContracted(rhs, rhsContract, rhsBatch, false)
	return DotGeneral(lhs, lhsContract, lhsBatch, rhs, rhsContract, rhsBatch)
}

// unitContracted moves contracted axes of size 1 where the Go backend's matmul
// wants them: last for the left operand, right after the batch axes for the
// right one. Moving size-1 axes is a reshape, no data moves; the backend would
// otherwise take such a right operand as transposed, through a slower kernel
// (an outer product of [N, 1] and [D, 1] ran 2-3 times slower than of [N, 1]
// and [1, D]). Other operands, and every operand elsewhere, are returned as
// they are.
func unitContracted(x *Node, contract, batch []int, left bool) (*Node, []int) {
	if len(contract) == 0 || !isIdentity(batch) {
		return x, contract
	}
	dims := x.Shape().Dimensions
	for _, a := range contract {
		if dims[a] != 1 {
			return x, contract
		}
	}
	nb, nc := len(batch), len(contract)
	want := seq(nb, nc)
	if left {
		want = seq(x.Rank()-nc, nc)
	}
	if slices.Equal(contract, want) {
		return x, contract
	}
	newDims := slices.Clone(dims[:nb])
	unit := make([]int, nc)
	for i := range unit {
		unit[i] = 1
	}
	free := []int{}
	for _, a := range freeAxes(x.Rank(), contract, batch) {
		free = append(free, dims[a])
	}
	if left {
		newDims = append(append(newDims, free...), unit...)
	} else {
		newDims = append(append(newDims, unit...), free...)
	}
	return Reshape(x, newDims...), want
}

// rhsLayoutOK reports whether the Go backend's matmul takes a right operand
// with these contracted and batch axes as it is: batch axes leading, the
// contracted ones together right after them or at the end.
func rhsLayoutOK(rank int, contract, batch []int) bool {
	if !isIdentity(batch) || len(contract) == 0 {
		return false
	}
	for i := 1; i < len(contract); i++ {
		if contract[i] != contract[i-1]+1 {
			return false
		}
	}
	return contract[0] == len(batch) || contract[len(contract)-1] == rank-1
}

// fill sets perm[axes[i]] = from + i.
func fill(perm, axes []int, from int) {
	for i, a := range axes {
		perm[a] = from + i
	}
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if i != p {
			return false
		}
	}
	return true
}

// transposeUnlessIdentity is TransposeAllAxes(x, perm...) (output axis i is
// x's axis perm[i]), or x itself when perm is the identity.
func transposeUnlessIdentity(x *Node, perm []int) *Node {
	if isIdentity(perm) {
		return x
	}
	return transpose(x, perm)
}

// uses counts the products each node enters as an operand.
var productUses = newNodeTable[int]()

func countUse(x *Node) { productUses.update(x, func(n int) int { return n + 1 }) }

// transposes holds the transposes and paddings operandGrad built, by node and key.
var transposes = newNodeTable[map[string]weak.Pointer[Node]]()

func permKey(perm []int) string { return fmt.Sprint(perm) }

// cachedTranspose is the transpose of x by perm built by transposeShared, or nil.
func cachedTranspose(x *Node, perm []int) *Node { return derived(x, permKey(perm)) }

// transposeShared is TransposeAllAxes(x, perm...), built once per node and
// permutation.
func transposeShared(x *Node, perm []int) *Node {
	return deriveOnce(x, permKey(perm), func() *Node { return transpose(x, perm) })
}

// derived is the node deriveOnce built from x under key, or nil.
func derived(x *Node, key string) *Node {
	t := transposes.get(x)
	if t == nil {
		return nil
	}
	transposes.Lock()
	defer transposes.Unlock()
	return t[key].Value()
}

// deriveOnce returns build(), built once per node x and key (a transpose or
// a padding of an operand shared by the gradients of the products it enters).
func deriveOnce(x *Node, key string, build func() *Node) *Node {
	if t := derived(x, key); t != nil {
		return t
	}
	t := build()
	transposes.update(x, func(m map[string]weak.Pointer[Node]) map[string]weak.Pointer[Node] {
		if m == nil {
			m = map[string]weak.Pointer[Node]{}
		}
		m[key] = weak.Make(t)
		return m
	})
	return t
}

// tokenPad is how many zero rows to append along an axis of size n that a
// 2D transpose will move last (the rows of its output are n floats long):
// 16 where n is a multiple of 1024. The Go backend's 2D transpose
// (compute v0.1.14 transpose2D, 32×32 tiles) writes each tile's 32 rows n
// floats apart, and at a multiple of 4 KB those writes fall in the same L1
// cache sets: a [2048, 128] transpose took 7.6 ns an element against 3.3 at
// [2064, 128], and a weight gradient's transpose and product 1.9 ms against
// 1.0-1.3 with the padding (bench/README.md, "Upstream").
func tokenPad(n int) int {
	if n >= 1024 && n%1024 == 0 {
		return 16
	}
	return 0
}

// padAxis appends n zero rows to x along axis.
func padAxis(x *Node, axis, n int) *Node {
	dims := slices.Clone(x.Shape().Dimensions)
	dims[axis] = n
	return Concatenate([]*Node{x, Zeros(x.Graph(), shapes.Make(x.DType(), dims...))}, axis)
}

// padShared is padAxis, built once per node, axis and size (an operand's
// padding is shared by the gradients of the products it enters, as its
// transpose is).
func padShared(x *Node, axis, n int) *Node {
	return deriveOnce(x, fmt.Sprintf("pad %d %d", axis, n), func() *Node { return padAxis(x, axis, n) })
}

// transpose is TransposeAllAxes(x, perm...), built with IdentitySwap where
// that form is taken: a swap of the last two axes behind batch axes, a last
// axis of at most maxSwapByProduct, at least minSwapByProduct elements.
func transpose(x *Node, perm []int) *Node {
	if r := x.Rank(); r >= 3 && isSwapLast(perm) && x.Shape().Dimensions[r-1] <= maxSwapByProduct &&
		x.Shape().Size() >= minSwapByProduct && x.DType() == dtypes.Float32 && uses(x.Graph(), IdentitySwap) {
		return swapByProduct(x)
	}
	return TransposeAllAxes(x, slices.Clone(perm)...)
}

// maxSwapByProduct is the largest last axis swapByProduct takes: its cost per
// element grows with it (the product is that axis long). At 128 it still ran
// 2-2.5 times faster than the Go backend's transpose alone, but in the tiny
// step (attention scores [2, 8, 128, 128]) it gained nothing and its
// products' work buffers raised the peak memory by 35 MB.
const maxSwapByProduct = 64

// minSwapByProduct is the fewest elements swapByProduct takes: smaller
// transposes are cheap either way.
const minSwapByProduct = 1 << 18

// isSwapLast reports whether perm keeps every axis but the last two, which
// it swaps.
func isSwapLast(perm []int) bool {
	r := len(perm)
	return r >= 2 && isIdentity(perm[:r-2]) && perm[r-2] == r-1 && perm[r-1] == r-2
}

// swapByProduct swaps x's last two axes, [..., R, C] -> [..., C, R], as a
// batched product with the identity: out[p, c, r] = Σ_k I[c, k]·x[p, r, k],
// with x as the product's right operand contracted on its last axis, a layout
// the Go backend's matmul packs itself. The Go backend has no fast path for
// this transpose and walks it element by element, on one core (compute
// v0.1.14 execTransposeGeneric; bench/README.md, "Upstream"). The values are
// x's own (x·1 plus zeros), except that a non-finite element spreads NaN
// along its row, where only a step whose gradient is already non-finite has one.
func swapByProduct(x *Node) *Node {
	dims := x.Shape().Dimensions
	r := len(dims)
	R, C := dims[r-2], dims[r-1]
	P := x.Shape().Size() / (R * C)
	y := DotGeneral(batchedIdentity(x.Graph(), P, C), []int{2}, []int{0}, Reshape(x, P, R, C), []int{2}, []int{0}) // [P, C, R]
	return Reshape(y, append(slices.Clone(dims[:r-2]), C, R)...)
}

// identityKey keys a graph's batched identities (Graph.State).
type identityKey struct{ p, c int }

// batchedIdentity is the float32 constant [P, C, C] of P identity matrices,
// one per graph and size: the swaps of a step share it.
func batchedIdentity(g *Graph, P, C int) *Node {
	key := identityKey{P, C}
	if id, ok := g.State(key).(*Node); ok {
		return id
	}
	eye := make([]float32, P*C*C)
	for p := range P {
		for i := range C {
			eye[p*C*C+i*C+i] = 1
		}
	}
	id := Const(g, tensors.FromFlatDataAndDimensions(eye, P, C, C))
	g.AttachState(key, id)
	return id
}
