package train

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/internal/fastgraph"
)

// Batch sharding: on the pure-Go backend a step's batch is cut into two
// halves whose forward and backward passes are independent sub-graphs, joined
// only where their loss sums (and, through the shared parameters, their
// gradients) add up. The backend runs each elementwise op on one core but
// executes independent ops concurrently, so two halves keep both cores of a
// small machine busy where one chain of ops left one idle (measured: the D128
// training step 183-186 -> 159-162 ms, the demo's 151-153 -> 123-128 ms on 2
// cores; four shards were slower than two). Values equal the unsplit graph's
// to float32 rounding. Dropout draws continue one RNG stream through the
// shards, so with dropout the masks depend on the shard count, which depends
// only on the backend and the batch size, never on the machine.

// batchShards returns the row ranges [start, end) a batch of b rows is cut into.
func batchShards(g *Graph, b int) [][2]int {
	if !fastgraph.Native(g) || b < 2 || b%2 != 0 {
		return [][2]int{{0, b}}
	}
	return [][2]int{{0, b / 2}, {b / 2, b}}
}

// rows slices rows [r[0], r[1]) of x along its first axis.
func rows(x *Node, r [2]int) *Node {
	if r[0] == 0 && r[1] == x.Shape().Dimensions[0] {
		return x
	}
	return Slice(x, AxisRange(r[0], r[1]))
}
