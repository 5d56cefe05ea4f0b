package layers

import (
	"weak"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// lookup is one Embed of a table: its rows and their indices, held weakly
// (nodeTable).
type lookup struct {
	rows, idx weak.Pointer[Node]
}

// lookups holds each table's Embeds.
var lookups = newNodeTable[[]lookup]()

// Embed is nn.Embedding (models/dit.py: EmbeddingLayer.forward,
// embedding[x]): the rows of table [V, D] at ids [...], [..., D]. It records
// the lookup for EmbeddedRows.
func Embed(table, ids *Node) *Node {
	idx := ExpandAxes(ids, -1)
	rows := Gather(table, idx)
	lookups.update(table, func(l []lookup) []lookup {
		return append(l, lookup{rows: weak.Make(rows), idx: weak.Make(idx)})
	})
	return rows
}

// EmbeddedRows returns the rows Embed took from table and their indices
// ([..., 1]) when that lookup is the table's only use in its graph so far.
// The table's gradient is then the rows' cotangent summed into a zero
// [V, D] tensor at those indices (GoMLX's Gather gradient), so a training
// step that adds the gradient to an accumulator can scatter the cotangent
// straight into it (ScatterSum(acc, idx, ∂rows)): no zero table is made,
// filled and added, 103 MB each step for GPT-2's vocabulary at D 512.
func EmbeddedRows(table *Node) (rows, idx *Node, ok bool) {
	l := lookups.get(table)
	if len(l) != 1 {
		return nil, nil, false
	}
	rows, idx = l[0].rows.Value(), l[0].idx.Value()
	if rows == nil || idx == nil || rows.Graph() != table.Graph() {
		return nil, nil, false
	}
	uses := 0
	for _, n := range table.Graph().Nodes() {
		for _, in := range n.Inputs() {
			if in == table {
				uses++
			}
		}
	}
	return rows, idx, uses == 1
}
