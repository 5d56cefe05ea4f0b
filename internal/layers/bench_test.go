package layers

import (
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/nn"

	"github.com/mdlm-go/mdlm/backend"
)

// BenchmarkLinearGradient is the minimal reproduction of the dense-gradient
// cost bench/README.md ("Upstream") reports: value and both gradients of a
// [2048, 128] x [128, 128]ᵀ linear layer (the D128 step's size) through
// GoMLX's nn.Dense (the Go backend's FusedDense and FusedDenseVJP), through
// GoMLX's DotGeneral gradient, and through Linear in training (contract).
//
//	go test -run '^$' -bench LinearGradient ./internal/layers
func BenchmarkLinearGradient(b *testing.B) {
	const N, D = 2048, 128
	x := tensors.FromShape(shapes.Make(dtypes.Float32, N, D))
	w := tensors.FromShape(shapes.Make(dtypes.Float32, D, D))
	for _, c := range []struct {
		name string
		f    func(x, w *Node) *Node
	}{
		{"nn.Dense", func(x, w *Node) *Node { return nn.Dense(x, w, nil, compute.DenseLayoutOutputsInput) }},
		{"DotGeneral", func(x, w *Node) *Node { return DotGeneral(x, []int{1}, nil, w, []int{1}, nil) }},
		{"Linear-training", func(x, w *Node) *Node { return Linear(Training, x, w, nil) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			be, err := backend.Shared()
			if err != nil {
				b.Fatal(err)
			}
			timeExec(b, MustNewExec(be, func(x, w *Node) []*Node {
				y := c.f(x, w)
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, y)), x, w)...)
			}), x, w)
		})
	}
}

// timeExec times exec on args, its first call (the compilation) left out.
func timeExec(b *testing.B, exec *Exec, args ...any) {
	b.Helper()
	exec.MustExec(args...)
	b.ResetTimer()
	for range b.N {
		exec.MustExec(args...)
	}
}

// BenchmarkTranspose is the minimal reproduction of the two transpose costs
// bench/README.md ("Upstream") reports, beside their work-arounds: a 2D
// transpose whose output rows are 2048 floats long against 2064 (tokenPad),
// and a batched swap of the last two axes against the product with a batched
// identity (swapByProduct). The ns/elem metric is per element moved.
//
//	go test -run '^$' -bench Transpose ./internal/layers
func BenchmarkTranspose(b *testing.B) {
	be, err := backend.Shared()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dims []int
		f    func(x *Node) *Node
	}{
		{"2D-2048x128", []int{2048, 128}, func(x *Node) *Node { return TransposeAllAxes(x, 1, 0) }},
		{"2D-2064x128", []int{2064, 128}, func(x *Node) *Node { return TransposeAllAxes(x, 1, 0) }},
		{"swap-128x64x64", []int{128, 64, 64}, func(x *Node) *Node { return TransposeAllAxes(x, 0, 2, 1) }},
		{"swapByProduct-128x64x64", []int{128, 64, 64}, swapByProduct},
	} {
		b.Run(c.name, func(b *testing.B) {
			x := tensors.FromShape(shapes.Make(dtypes.Float32, c.dims...))
			timeExec(b, MustNewExec(be, c.f), x)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(x.Shape().Size()), "ns/elem")
		})
	}
}
