package layers

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

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
