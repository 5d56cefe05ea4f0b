package layers

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
)

// EmbeddedRows finds a table's one lookup, refuses a table with another use
// or two lookups, and the cotangent it gives, scattered into an
// accumulator, equals the accumulator plus the table's gradient.
func TestEmbeddedRows(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	table, acc := randomTensor(rng, 7, 3), randomTensor(rng, 7, 3)
	ids := tensors.FromFlatDataAndDimensions([]int32{1, 4, 4, 0, 6, 1}, 2, 3)
	for _, c := range []struct {
		name string
		uses int // 0: one Embed; 1: also a product; 2: two Embeds
		ok   bool
	}{{"one lookup", 0, true}, {"another use", 1, false}, {"two lookups", 2, false}} {
		out := MustExecOnceN(b, func(tb, ac, id *Node) []*Node {
			rows := Embed(tb, id)
			loss := ReduceAllSum(Mul(rows, rows))
			switch c.uses {
			case 1:
				loss = Add(loss, ReduceAllSum(tb))
			case 2:
				loss = Add(loss, ReduceAllSum(Embed(tb, id)))
			}
			r, idx, ok := EmbeddedRows(tb)
			if ok != c.ok {
				t.Errorf("%s: EmbeddedRows ok = %v, want %v", c.name, ok, c.ok)
			}
			want := Add(Gradient(loss, tb)[0], ac)
			if !ok {
				return []*Node{want, want}
			}
			if r != rows {
				t.Errorf("%s: rows are not Embed's", c.name)
			}
			return []*Node{ScatterSum(ac, idx, Gradient(loss, r)[0], false, false), want}
		}, table, acc, ids)
		near(t, c.name, tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1]), 1e-6)
	}
}

// A weight gradient over a token axis of 1024 (tokenPad) has the value and
// gradient of the unpadded one, and its graph holds the padding.
func TestProductGradPadded(t *testing.T) {
	b, _ := backend.Shared()
	if b.String() != "go" {
		t.Skipf("backend %s: the form is not taken", b.String())
	}
	const N, in, out = 1024, 5, 3
	rng := rand.New(rand.NewPCG(7, 8))
	all := randomTensor(rng, N*in+out*in)
	linear := func(all *Node) *Node {
		x := Reshape(Slice(all, AxisRange(0, N*in)), N, in)
		w := Reshape(Slice(all, AxisRange(N*in, N*in+out*in)), out, in)
		return Linear(Training, x, w, nil)
	}
	matchesWithout(t, ProductGrad, linear, all)

	padded := false
	MustExecOnceN(b, func(a *Node) []*Node {
		g := Gradient(ReduceAllSum(linear(a)), a)[0]
		for _, n := range a.Graph().Nodes() {
			if n.Type() == NodeTypeConcatenate && n.Shape().Dimensions[0] == N+tokenPad(N) {
				padded = true
			}
		}
		return []*Node{g}
	}, all)
	if !padded {
		t.Errorf("no [%d, ...] concatenation in the graph: the token axis was not padded", N+tokenPad(N))
	}
	if tokenPad(N) == 0 || tokenPad(1000) != 0 || tokenPad(512) != 0 {
		t.Errorf("tokenPad(%d, 1000, 512) = %d, %d, %d", N, tokenPad(N), tokenPad(1000), tokenPad(512))
	}
}
