package fastgraph

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	gtensors "github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/accel"
)

// randomTensor is a float32 tensor of normal draws.
func randomTensor(rng *rand.Rand, dims ...int) *gtensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return gtensors.FromFlatDataAndDimensions(v, dims...)
}

// valueAndGrads evaluates f on the inputs and the gradients of Σ f(in)·w (w
// random, fixed by the seed) with respect to every input: the value and the
// vector-Jacobian products for one random cotangent.
func valueAndGrads(t *testing.T, f func(in []*Node) *Node, inputs ...*gtensors.Tensor) [][]float32 {
	t.Helper()
	b, err := accel.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := NewExec(b, func(g *Graph, in []*Node) []*Node {
		y := f(in)
		rng := rand.New(rand.NewPCG(3, 4))
		w := make([]float32, y.Shape().Size())
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		loss := ReduceAllSum(Mul(y, Const(g, gtensors.FromFlatDataAndDimensions(w, y.Shape().Dimensions...))))
		return append([]*Node{y}, Gradient(loss, in...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	out, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(out))
	for i, o := range out {
		res[i] = gtensors.MustCopyFlatData[float32](o)
	}
	return res
}

// assertClose compares two results (value, then gradients) to float32
// rounding, relative to each output's largest magnitude.
func assertClose(t *testing.T, got, want [][]float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("output %d: %d elements, want %d", i, len(got[i]), len(want[i]))
		}
		scale := 0.0
		for _, v := range want[i] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j] - want[i][j])); d > tol*math.Max(scale, 1) || math.IsNaN(float64(got[i][j])) {
				t.Fatalf("output %d (0: value, k: gradient of input k-1), element %d: %g, want %g", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestContractGradients checks Contract's value and both operand gradients
// against GoMLX's DotGeneral for the forms the backbones build (a linear
// layer, outer products and sums with ones, attention's batched products)
// and for less regular ones (non-leading batch axes, two contracted axes,
// contracted axes out of order), which exercise both product orders and the
// transposes back.
func TestContractGradients(t *testing.T) {
	type axes struct{ lc, lb, rc, rb []int }
	cases := []struct {
		name     string
		lhs, rhs []int
		ax       axes
		// want builds the reference where GoMLX's DotGeneral gradient cannot
		// (v0.28.2 assumes the right operand's contracted axes ascending).
		want func(in []*Node) *Node
	}{
		{"linear x·Wᵀ", []int{24, 8}, []int{5, 8}, axes{[]int{1}, nil, []int{1}, nil}, nil},
		{"matmul x·W", []int{24, 8}, []int{8, 5}, axes{[]int{1}, nil, []int{0}, nil}, nil},
		{"sum with ones", []int{24, 8}, []int{8, 1}, axes{[]int{1}, nil, []int{0}, nil}, nil},
		{"outer product", []int{24, 1}, []int{1, 8}, axes{[]int{1}, nil, []int{0}, nil}, nil},
		{"batched outer, spread mid", []int{3, 7, 1}, []int{3, 1, 8}, axes{[]int{2}, []int{0}, []int{1}, []int{0}}, nil},
		{"attention scores", []int{2, 5, 3, 4}, []int{2, 6, 3, 4}, axes{[]int{3}, []int{0, 2}, []int{3}, []int{0, 2}}, nil},
		{"attention values", []int{2, 3, 5, 6}, []int{2, 6, 3, 4}, axes{[]int{3}, []int{0, 1}, []int{1}, []int{0, 2}}, nil},
		{"two contracted axes", []int{4, 3, 5}, []int{3, 5, 6}, axes{[]int{1, 2}, nil, []int{0, 1}, nil}, nil},
		{"contracted out of order", []int{4, 3, 5}, []int{5, 6, 3}, axes{[]int{1, 2}, nil, []int{2, 0}, nil},
			func(in []*Node) *Node {
				return DotGeneral(in[0], []int{1, 2}, nil, TransposeAllAxes(in[1], 2, 0, 1), []int{0, 1}, nil)
			}},
		{"matrix-vector (GoMLX's gradient)", []int{6, 5}, []int{5}, axes{[]int{1}, nil, []int{0}, nil}, nil},
		{"batched vector dot", []int{3, 5}, []int{3, 5}, axes{[]int{1}, []int{0}, []int{1}, []int{0}}, nil},
		{"weight gradient form", []int{24, 5}, []int{24, 8}, axes{[]int{0}, nil, []int{0}, nil}, nil},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lhs, rhs := randomTensor(rng, c.lhs...), randomTensor(rng, c.rhs...)
			build := func(dot func(l *Node, lc, lb []int, r *Node, rc, rb []int) *Node) func(in []*Node) *Node {
				return func(in []*Node) *Node {
					return dot(in[0], c.ax.lc, c.ax.lb, in[1], c.ax.rc, c.ax.rb)
				}
			}
			wantFn := build(DotGeneral)
			if c.want != nil {
				wantFn = c.want
			}
			want := valueAndGrads(t, wantFn, lhs, rhs)
			got := valueAndGrads(t, build(Contract), lhs, rhs)
			assertClose(t, got, want, 1e-5)
		})
	}
}

// TestBroadcastsAndSums checks each helper's value and gradient against the
// plain graph (ReduceSum, broadcasting binary ops) it replaces.
func TestBroadcastsAndSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	x3 := randomTensor(rng, 3, 7, 8)
	row := randomTensor(rng, 3, 7, 1)
	vec := randomTensor(rng, 8)
	bd := randomTensor(rng, 3, 8)
	cases := []struct {
		name      string
		got, want func(in []*Node) *Node
		inputs    []*gtensors.Tensor
	}{
		{"SumLast", func(in []*Node) *Node { return SumLast(in[0]) },
			func(in []*Node) *Node { return ReduceAndKeep(in[0], ReduceSum, -1) }, []*gtensors.Tensor{x3}},
		{"MeanLast", func(in []*Node) *Node { return MeanLast(in[0]) },
			func(in []*Node) *Node { return ReduceAndKeep(in[0], ReduceMean, -1) }, []*gtensors.Tensor{x3}},
		{"SpreadLast", func(in []*Node) *Node { return Mul(in[0], SpreadLast(in[1], 8)) },
			func(in []*Node) *Node { return Mul(in[0], in[1]) }, []*gtensors.Tensor{x3, row}},
		{"SpreadLead", func(in []*Node) *Node { return Mul(in[0], SpreadLead(in[1], 3, 7)) },
			func(in []*Node) *Node { return Mul(in[0], Reshape(in[1], 1, 1, 8)) }, []*gtensors.Tensor{x3, vec}},
		{"SpreadMid", func(in []*Node) *Node { return Mul(in[0], SpreadMid(in[1], 7)) },
			func(in []*Node) *Node { return Mul(in[0], Reshape(in[1], 3, 1, 8)) }, []*gtensors.Tensor{x3, bd}},
		{"SoftmaxLast", func(in []*Node) *Node { return SoftmaxLast(in[0]) },
			func(in []*Node) *Node { return Softmax(in[0], -1) }, []*gtensors.Tensor{x3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertClose(t, valueAndGrads(t, c.got, c.inputs...), valueAndGrads(t, c.want, c.inputs...), 1e-5)
		})
	}
}

// TestMaxLast checks the row maximum against the data.
func TestMaxLast(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randomTensor(rng, 4, 9)
	got := valueAndGrads(t, func(in []*Node) *Node { return MaxLast(in[0]) }, x)
	flat := gtensors.MustCopyFlatData[float32](x)
	for r := 0; r < 4; r++ {
		m := float32(math.Inf(-1))
		for _, v := range flat[r*9 : (r+1)*9] {
			m = max(m, v)
		}
		if got[0][r] != m {
			t.Fatalf("row %d: max %g, want %g", r, got[0][r], m)
		}
	}
	for _, g := range got[1] {
		if g != 0 {
			t.Fatalf("MaxLast has a gradient (%g); it is a constant shift", g)
		}
	}
}

// TestNativeForms checks that the Go backend builds the rewritten forms (the
// helpers would otherwise pass the value tests above by falling back).
func TestNativeForms(t *testing.T) {
	b, err := accel.Backend()
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(b, "native")
	defer g.Finalize()
	if !Native(g) {
		t.Skipf("backend %s: the rewritten forms apply to the Go backend only", b)
	}
	x := Parameter(g, "x", shapes.Make(dtypes.Float32, 3, 7, 8))
	if got := SumLast(x).Shape().Dimensions; len(got) != 3 || got[2] != 1 {
		t.Fatalf("SumLast shape %v", got)
	}
	if n := SpreadMid(Parameter(g, "s", shapes.Make(dtypes.Float32, 3, 8)), 7); n.Type() != NodeTypeDotGeneral {
		t.Fatalf("SpreadMid on the Go backend is a %s, want a DotGeneral (outer product)", n.Type())
	}
	if lookupVJP(MatMulT(Reshape(x, 21, 8), Parameter(g, "w", shapes.Make(dtypes.Float32, 5, 8)))) == nil {
		t.Fatal("MatMulT's node is not registered for Contract's gradient")
	}
}

// TestByRows checks the batch cut: two halves on the Go backend (one shard for
// a single row or elsewhere), and outputs joined in row order.
func TestByRows(t *testing.T) {
	b, err := accel.Backend()
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(b, "shards")
	defer g.Finalize()
	for _, c := range []struct{ rows, shards int }{{8, 2}, {7, 2}, {1, 1}} {
		want := 1
		if Native(g) {
			want = c.shards
		}
		if got := len(Shards(g, c.rows)); got != want {
			t.Fatalf("%d rows: %d shards, want %d", c.rows, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	x, s := randomTensor(rng, 7, 5, 4), randomTensor(rng, 7, 4)
	f := func(in []*Node) *Node { return Mul(SoftmaxLast(in[0]), SpreadMid(in[1], 5)) }
	got := valueAndGrads(t, func(in []*Node) *Node { return ByRows(Shards(in[0].Graph(), 7), in, f) }, x, s)
	assertClose(t, got, valueAndGrads(t, f, x, s), 1e-6)
}

// TestGelu checks both GELU forms, values and gradients, against the
// decomposed graph GoMLX differentiates, at z = 0, far in either tail and in
// between.
func TestGelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	z := randomTensor(rng, 6, 50)
	flat := gtensors.MustCopyFlatData[float32](z)
	for i, v := range []float32{0, -0, 1e-30, -1e-30, 1e-8, -12, 12, -60, 60, -3, 3} {
		flat[i] = v
	}
	for i := 20; i < 40; i++ {
		flat[i] *= 4
	}
	z = gtensors.FromFlatDataAndDimensions(flat, 6, 50)
	want := valueAndGrads(t, func(in []*Node) *Node { return geluTanhDecomposed(in[0]) }, z)
	for name, f := range map[string]func(*Node) *Node{"GeluTanh": GeluTanh, "GeluTanhTrain": GeluTanhTrain} {
		t.Run(name, func(t *testing.T) {
			got := valueAndGrads(t, func(in []*Node) *Node { return f(in[0]) }, z)
			for i := range got {
				for j, v := range got[i] {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("output %d element %d (z = %g) is %g", i, j, flat[j], v)
					}
				}
			}
			assertClose(t, got, want, 2e-6)
		})
	}
}
