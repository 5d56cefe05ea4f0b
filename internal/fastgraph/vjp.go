package fastgraph

import (
	"fmt"
	"sync"
	"weak"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Gradients for the nodes this package builds. GoMLX looks a node's gradient
// up by node type in VJPRegistration (its documented table for new or
// experimental ones); for the types below the registered function first looks
// for a gradient this package attached to that very node, and otherwise keeps
// GoMLX's (DotGeneral, Mul) or reports that there is none (the fused softmax
// and GELU, which GoMLX only differentiates through their decomposed graphs).

// vjpFunc returns the gradients of node's inputs for its cotangent v. It must
// not capture the node (the table holds it weakly).
type vjpFunc func(node, v *Node) []*Node

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

// vjps holds the gradients this package attached to nodes.
var vjps = newNodeTable[vjpFunc]()

func init() {
	for _, t := range []NodeType{NodeTypeDotGeneral, NodeTypeFusedSoftmax, NodeTypeFusedActivation, NodeTypeMul} {
		gomlxVJP := VJPRegistration[t]
		VJPRegistration[t] = func(node *Node, v []*Node, out shapes.Shape) []*Node {
			if f := lookupVJP(node); f != nil {
				return f(node, v[0])
			}
			if gomlxVJP == nil {
				panic(fmt.Sprintf("fastgraph: node %s has no gradient (build it through fastgraph)", node))
			}
			return gomlxVJP(node, v, out)
		}
	}
}

// setVJP attaches f as node's gradient.
func setVJP(node *Node, f vjpFunc) { vjps.update(node, func(vjpFunc) vjpFunc { return f }) }

func lookupVJP(node *Node) vjpFunc { return vjps.get(node) }
