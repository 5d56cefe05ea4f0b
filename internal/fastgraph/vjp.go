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
// GoMLX's (DotGeneral) or reports that there is none (the fused softmax and
// GELU, which GoMLX only differentiates through their decomposed graphs).

// vjpFunc returns the gradients of node's inputs for its cotangent v. It must
// not capture the node (the registry holds it weakly).
type vjpFunc func(node, v *Node) []*Node

// registry maps nodes to their gradient functions. Keys are weak: a graph and
// its nodes are collected as usual once unused, and the entries of collected
// nodes are dropped as the registry grows.
var registry = struct {
	sync.Mutex
	vjps      map[weak.Pointer[Node]]vjpFunc
	pruneSize int
}{vjps: map[weak.Pointer[Node]]vjpFunc{}, pruneSize: 1024}

func init() {
	for _, t := range []NodeType{NodeTypeDotGeneral, NodeTypeFusedSoftmax, NodeTypeFusedGelu} {
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
func setVJP(node *Node, f vjpFunc) {
	registry.Lock()
	defer registry.Unlock()
	registry.vjps[weak.Make(node)] = f
	if len(registry.vjps) >= registry.pruneSize {
		for k := range registry.vjps {
			if k.Value() == nil {
				delete(registry.vjps, k)
			}
		}
		registry.pruneSize = max(1024, 2*len(registry.vjps))
	}
}

func lookupVJP(node *Node) vjpFunc {
	registry.Lock()
	defer registry.Unlock()
	return registry.vjps[weak.Make(node)]
}
