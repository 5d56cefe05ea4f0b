package layers

import (
	"sync"
	"weak"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// nodeTable maps nodes to values. Keys are weak: a graph and its nodes are
// collected as usual once unused, and the entries of collected nodes are
// dropped as the table grows. Values must not hold the graph's nodes strongly.
type nodeTable[V any] struct {
	sync.Mutex
	m         map[weak.Pointer[Node]]V
	pruneSize int
}

func newNodeTable[V any]() *nodeTable[V] {
	return &nodeTable[V]{m: map[weak.Pointer[Node]]V{}, pruneSize: 1024}
}

func (t *nodeTable[V]) get(node *Node) V {
	t.Lock()
	defer t.Unlock()
	return t.m[weak.Make(node)]
}

// update sets node's value to f of its current one (the zero value if none).
func (t *nodeTable[V]) update(node *Node, f func(V) V) {
	t.Lock()
	defer t.Unlock()
	k := weak.Make(node)
	t.m[k] = f(t.m[k])
	if len(t.m) >= t.pruneSize {
		for k := range t.m {
			if k.Value() == nil {
				delete(t.m, k)
			}
		}
		t.pruneSize = max(1024, 2*len(t.m))
	}
}
