package backbone

// The selective scan (Mamba's selective_scan_fn with delta_softplus, z gate
// and D skip applied by the caller) as GoMLX ops:
//
//	hₜ = aₜ ⊙ hₜ₋₁ + bₜ,   aₜ = exp(Δₜ A),   bₜ = Δₜ xₜ Bₜ,   yₜ = Σₙ Cₜ[n] hₜ[·, n]
//
// with states h [Din, N] per batch row. The scan is chunked: L is cut into
// chunks of layers.ScanCut.Chunk positions, processed one after another, each
// carrying the state at its last position into the next. Inside a chunk the
// recurrence is solved by a log-depth (Hillis–Steele) associative scan over the
// pairs (a, b), whose operator (a₂, b₂)∘(a₁, b₁) = (a₂a₁, a₂b₁ + b₂) composes two
// steps: after ⌈log₂ K⌉ levels every position holds its state from a zero start
// and the product of decays since the chunk start, so the carried state enters
// as h = b + a ⊙ h_carry.
//
// Why this form: GoMLX has no differentiable scan or loop primitive. A fully
// sequential recurrence is L dependent steps: on an accelerator L kernel
// launches per layer and direction, and L nodes in the graph. A closed form
// through cumulative sums of ΔA (the Mamba-2 trick) needs exp(−A·ΣΔ), which
// overflows float32 within a few dozen positions for Mamba-1's per-channel A.
// The log-depth scan does K·log₂K work per chunk in large elementwise ops that
// fuse on XLA, and with the state in float32 it is exact to rounding. The chunk
// length trades the two: the pure-Go backend, which runs each op as full passes
// over memory, is fastest at one position per chunk (the sequential end), an
// accelerator at long chunks (layers.ScanCutFor).
//
// Memory: a chunk's states are [B, K, Din, N]. On an accelerator each chunk's
// scan is a gradient-checkpointed block: the backward pass keeps only the chunk
// inputs and the carried states [B, Din, N] per chunk boundary, and recomputes
// a chunk's levels when its gradient arrives (layers.ScanCutFor says what the
// CPU backend does instead). At tiny-dimamba (D 512, so Din 1024, N 16; 14 blocks,
// two directions each: 28 scans; L 1024, K 64; float32), per sequence:
//
//   - one level of one chunk: 64·1024·16·4 B = 4 MiB; the chunk being
//     recomputed holds its 2·6 level tensors, 48 MiB, one chunk at a time;
//   - kept for the backward pass per scan: 16 carried states of 64 KiB (1 MiB)
//     and the inputs Δ, x [L, Din] and B, C [L, N] (8.1 MiB), so 256 MiB for
//     all 28 scans;
//   - without chunking or checkpointing, every level of every state would be
//     kept: 10 levels of 2 tensors of 64 MiB per scan, 35 GiB for the model.

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/internal/layers"
)

// selectiveScan returns y [B, L, Din] for delta, x [B, L, Din], A [Din, N] and
// bIn, cOut [B, L, N], all float32. With reverse the recurrence runs from the
// last position to the first (the reverse Mamba seen through its flips).
func selectiveScan(delta, A, bIn, cOut, x *Node, reverse bool) *Node {
	L := delta.Shape().Dimensions[1]
	opts := layers.ScanCutFor(delta.Graph(), L)
	K := max(1, min(opts.Chunk, L))
	var starts []int
	for s := 0; s < L; s += K {
		starts = append(starts, s)
	}
	ys := make([]*Node, len(starts))
	var carry *Node // [B, 1, Din, N]; nil is the zero state
	for i := range starts {
		c := i
		if reverse {
			c = len(starts) - 1 - i
		}
		lo, hi := starts[c], min(starts[c]+K, L)
		sl := func(n *Node) *Node { return Slice(n, AxisRange(), AxisRange(lo, hi)) }
		ys[c], carry = scanChunk(sl(delta), A, sl(bIn), sl(cOut), sl(x), carry, reverse, opts.Checkpoint)
	}
	if len(ys) == 1 {
		return ys[0]
	}
	return Concatenate(ys, 1)
}

// scanChunk solves one chunk from the carried state and returns its outputs
// [B, K, Din] and the state at its last position in scan order [B, 1, Din, N].
func scanChunk(delta, A, bIn, cOut, x, carry *Node, reverse, checkpoint bool) (y, last *Node) {
	if checkpoint {
		delta, bIn, cOut, x = delta.Checkpoint(), bIn.Checkpoint(), cOut.Checkpoint(), x.Checkpoint()
		A = A.Checkpoint()
		if carry != nil {
			carry = carry.Checkpoint()
		}
	}
	dims := delta.Shape().Dimensions
	K, Din := dims[1], dims[2]
	N := A.Shape().Dimensions[1]
	B := dims[0]
	// exp(Δ A) and Δ x B [B, K, Din, N], written as outer products (DotGeneral
	// over a unit axis) and a leading-axes broadcast: the forms the Go backend
	// runs without its per-element broadcasting iterator.
	spread := DotGeneral(Reshape(delta, B*K*Din, 1), []int{1}, nil, Ones(delta.Graph(), shapes.Make(delta.DType(), 1, N)), []int{0}, nil)
	a := Exp(Mul(Reshape(spread, B, K, Din, N), BroadcastToDims(Reshape(A, 1, 1, Din, N), B, K, Din, N)))
	b := DotGeneral(ExpandAxes(Mul(delta, x), -1), []int{3}, []int{0, 1}, ExpandAxes(bIn, 2), []int{2}, []int{0, 1})
	for s := 1; s < K; s *= 2 {
		// Compose each position with the one s steps earlier in scan order.
		b = combine(b, a, b, s, reverse, true)
		a = combine(a, a, a, s, reverse, false)
	}
	h := b
	if carry != nil {
		h = Add(b, Mul(a, carry))
	}
	y = DotGeneral(h, []int{3}, []int{0, 1}, cOut, []int{2}, []int{0, 1}) // Σₙ C[n] h[·, n]
	end := K - 1
	if reverse {
		end = 0
	}
	last = Slice(h, AxisRange(), AxisElem(end))
	if checkpoint {
		y, last = y.StopCheckpoint(), last.StopCheckpoint()
	}
	return y, last
}

// combine is one Hillis–Steele level on axis 1: for the positions that have a
// predecessor s steps earlier in scan order, v·w[earlier] (+ v itself when add,
// the b update; the a update multiplies), others unchanged. v is the current
// value, m the multiplier (a) and w the predecessor's value.
func combine(v, m, w *Node, s int, reverse, add bool) *Node {
	K := v.Shape().Dimensions[1]
	ax := func(n *Node, lo, hi int) *Node { return Slice(n, AxisRange(), AxisRange(lo, hi)) }
	if reverse { // position t takes t+s; the last s positions have none
		upd := Mul(ax(m, 0, K-s), ax(w, s, K))
		if add {
			upd = Add(ax(v, 0, K-s), upd)
		}
		return Concatenate([]*Node{upd, ax(v, K-s, K)}, 1)
	}
	upd := Mul(ax(m, s, K), ax(w, 0, K-s))
	if add {
		upd = Add(ax(v, s, K), upd)
	}
	return Concatenate([]*Node{ax(v, 0, s), upd}, 1)
}
