package fastgraph

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Batch sharding: on the Go backend a batch is cut into two halves whose
// graphs are independent, joined only at the end (summed losses, concatenated
// outputs; in training, through the shared parameters, summed gradients).
// The backend runs each elementwise op on one core but executes independent
// ops concurrently, so two halves keep both cores of a small machine busy
// where one chain of ops left one idle (measured on 2 cores: the D128 training
// step 183-186 -> 159-162 ms, the demo's 151-153 -> 123-128 ms; four shards
// were slower than two). Values equal the unsplit graph's to float32
// rounding. The shard count depends only on the backend and the batch size,
// never on the machine, so results (dropout draws included, which continue
// one RNG stream through the shards) do not either.

// Shards returns the row ranges [start, end) a batch of b rows is cut into:
// two halves on the Go backend (the second one row longer for odd b), the
// whole batch otherwise.
func Shards(g *Graph, b int) [][2]int {
	if !Native(g) || b < 2 {
		return [][2]int{{0, b}}
	}
	return [][2]int{{0, b / 2}, {b / 2, b}}
}

// Rows slices rows [r[0], r[1]) of x along its first axis (x itself for all rows).
func Rows(x *Node, r [2]int) *Node {
	if r[0] == 0 && r[1] == x.Shape().Dimensions[0] {
		return x
	}
	return Slice(x, AxisRange(r[0], r[1]))
}

// ByRows evaluates f on each of the shards' rows of the inputs (all [B, ...])
// and joins its outputs along the first axis.
func ByRows(shards [][2]int, inputs []*Node, f func(in []*Node) *Node) *Node {
	parts := make([]*Node, len(shards))
	for i, r := range shards {
		in := make([]*Node, len(inputs))
		for j, x := range inputs {
			in[j] = Rows(x, r)
		}
		parts[i] = f(in)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return Concatenate(parts, 0)
}
