package layers

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Shards returns the row ranges [start, end) a batch of b rows is cut into:
// with BatchHalves two halves (the second one row longer for odd b), whose
// graphs are independent and joined only at the end (summed losses; in
// training, through the shared parameters, summed gradients); otherwise the
// whole batch. The pure-Go backend runs independent ops concurrently, so two
// halves keep both cores of a small machine busy (bench/README.md, "Graph
// forms"). Values equal the unsplit graph's to float32 rounding, and the cut
// depends only on the backend and b, never on the machine, so results (dropout
// draws included, which continue one RNG stream through the shards) do not
// either. wholeBatch keeps the batch whole (DiMamba, whose scan is many small
// ops: halves add more per-op overhead than they win in concurrency).
func Shards(g *Graph, b int, wholeBatch bool) [][2]int {
	if wholeBatch || b < 2 || !uses(g, BatchHalves) {
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

// ScanCut is how the selective scan (backbone/scan.go) cuts a sequence:
// Chunk positions are solved at once by its log-depth scan, and with
// Checkpoint each chunk is a gradient-checkpointed block.
type ScanCut struct {
	Chunk      int
	Checkpoint bool
}

// ScanOverride, when non-nil, replaces ScanCutFor's choice (tests and benchmarks).
var ScanOverride *ScanCut

// ScanCutFor picks the cut for sequence length L. With ShortScan (the pure-Go
// backend, which runs every level as full passes over memory) chunks are
// short: one position up to L 128, then at most 128 chunks, and not
// checkpointed (recomputation costs more than the memory it saves at the
// sizes a CPU trains). Otherwise (an accelerator, where each level is one
// fused kernel and launches are what costs) chunks are 64 long and
// checkpointed, which keeps the backward pass's memory to a chunk's levels.
func ScanCutFor(g *Graph, L int) ScanCut {
	if ScanOverride != nil {
		return *ScanOverride
	}
	if uses(g, ShortScan) {
		return ScanCut{Chunk: max(1, (L+127)/128), Checkpoint: false}
	}
	return ScanCut{Chunk: 64, Checkpoint: true}
}
