package fastgraph

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/accel"
)

// BenchmarkForms times each rewritten form against the plain graph it
// replaces, on [2048, 128] float32 (the D128 step's activations): per op,
// over 20 independent copies in one graph (so per-call overhead is spread).
// go test -run '^$' -bench Forms ./internal/fastgraph
func BenchmarkForms(b *testing.B) {
	const N, D, copies = 2048, 128, 20
	x := gtensors.FromShape(shapes.Make(dtypes.Float32, N, D))
	col := gtensors.FromShape(shapes.Make(dtypes.Float32, N, 1))
	vec := gtensors.FromShape(shapes.Make(dtypes.Float32, D))
	w := gtensors.FromShape(shapes.Make(dtypes.Float32, D, D))
	cases := []struct {
		name string
		op   func(x *Node, aux []*Node) []*Node
		aux  []*gtensors.Tensor
	}{
		{"mul-by-column/broadcast", func(x *Node, a []*Node) []*Node { return []*Node{Mul(x, a[0])} }, []*gtensors.Tensor{col}},
		{"mul-by-column/SpreadLast", func(x *Node, a []*Node) []*Node { return []*Node{Mul(x, SpreadLast(a[0], D))} }, []*gtensors.Tensor{col}},
		{"mul-by-row/broadcast", func(x *Node, a []*Node) []*Node { return []*Node{Mul(x, Reshape(a[0], 1, D))} }, []*gtensors.Tensor{vec}},
		{"mul-by-row/SpreadLead", func(x *Node, a []*Node) []*Node { return []*Node{Mul(x, SpreadLead(a[0], N))} }, []*gtensors.Tensor{vec}},
		{"sum-last/ReduceSum", func(x *Node, _ []*Node) []*Node { return []*Node{ReduceAndKeep(x, ReduceSum, -1)} }, nil},
		{"sum-last/SumLast", func(x *Node, _ []*Node) []*Node { return []*Node{SumLast(x)} }, nil},
		{"sum-leading/ReduceSum", func(x *Node, _ []*Node) []*Node { return []*Node{ReduceSum(x, 0)} }, nil},
		{"sum-leading/ones-product", func(x *Node, _ []*Node) []*Node {
			return []*Node{Contract(Ones(x.Graph(), shapes.Make(dtypes.Float32, 1, N)), []int{1}, nil, x, []int{0}, nil)}
		}, nil},
		{"gelu/GeluTanh", func(x *Node, _ []*Node) []*Node { return []*Node{GeluTanh(x)} }, nil},
		{"gelu/GeluTanhTrain", func(x *Node, _ []*Node) []*Node { return []*Node{GeluTanhTrain(x)} }, nil},
		{"gelu+grad/GeluTanh", func(x *Node, _ []*Node) []*Node { return Gradient(ReduceAllSum(Mul(GeluTanh(x), x)), x) }, nil},
		{"gelu+grad/GeluTanhTrain", func(x *Node, _ []*Node) []*Node { return Gradient(ReduceAllSum(Mul(GeluTanhTrain(x), x)), x) }, nil},
		{"linear-gradients/DotGeneral", func(x *Node, a []*Node) []*Node {
			return Gradient(ReduceAllSum(DotGeneral(x, []int{1}, nil, a[0], []int{1}, nil)), x, a[0])
		}, []*gtensors.Tensor{w}},
		{"linear-gradients/Contract", func(x *Node, a []*Node) []*Node {
			return Gradient(ReduceAllSum(Contract(x, []int{1}, nil, a[0], []int{1}, nil)), x, a[0])
		}, []*gtensors.Tensor{w}},
	}
	backend, err := accel.Backend()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			exec := MustNewExec(backend, func(g *Graph, in []*Node) []*Node {
				var total *Node
				for i := range copies {
					for _, y := range c.op(AddScalar(in[0], float64(i)), in[1:]) {
						// One element of each result keeps it alive without adding a pass over it.
						e := ReduceAllSum(Slice(Reshape(y, -1), AxisRange(0, 1)))
						if total == nil {
							total = e
						} else {
							total = Add(total, e)
						}
					}
				}
				return []*Node{total}
			})
			args := []any{x}
			for _, a := range c.aux {
				args = append(args, a)
			}
			exec.MustCall(args...)
			b.ResetTimer()
			for range b.N {
				for _, o := range exec.MustCall(args...) {
					o.FinalizeAll()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*copies), "µs/op")
		})
	}
}
