package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
)

// UpdateInPlace gives Update's values (the graph, run by the backend) on
// gradients scaled first, with and without weight decay, for parameters of
// sizes that are no multiple of a vector or of a chunk, on one and on three
// workers; it leaves every gradient zero.
func TestUpdateInPlaceMatchesUpdate(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{1, 17, 3*inPlaceChunk + 5}
	for _, wd := range []float64{0, 0.1} {
		for _, workers := range []int{1, 3} {
			a := AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: wd}
			rng := rand.New(rand.NewPCG(uint64(workers), 2))
			ts := make([]Tensors, len(sizes))
			var args []any
			for _, part := range []int{0, 1, 2, 3} { // p, m, v, g
				for i, n := range sizes {
					x := make([]float32, n)
					for j := range x {
						x[j] = float32(rng.NormFloat64())
						if part == 2 {
							x[j] = float32(rng.Float64()) // v ≥ 0
						}
					}
					switch part {
					case 0:
						ts[i].P = x
					case 1:
						ts[i].M = x
					case 2:
						ts[i].V = x
					default:
						ts[i].G = x
					}
					args = append(args, tensors.FromFlatDataAndDimensions(append([]float32(nil), x...), n))
				}
			}
			const scale = 0.37
			scalars := a.Scalars(7, a.LR)
			args = append(args, tensors.FromFlatDataAndDimensions(scalars, NumScalars))
			k := len(sizes)
			want := MustExecOnceN(b, func(in []*Node) []*Node {
				g := make([]*Node, k)
				for i := range g {
					g[i] = MulScalar(in[3*k+i], scale)
				}
				p, m, v := a.Update(in[:k], g, in[k:2*k], in[2*k:3*k], in[4*k])
				return append(append(p, m...), v...)
			}, args...)
			a.UpdateInPlace(ts, scale, scalars, workers)
			for i := range ts {
				for part, got := range [][]float32{ts[i].P, ts[i].M, ts[i].V} {
					w := tensors.MustCopyFlatData[float32](want[part*k+i])
					for j := range w {
						if d := math.Abs(float64(got[j] - w[j])); d > 1e-6*math.Max(1, math.Abs(float64(w[j]))) {
							t.Fatalf("wd %g, %d workers, parameter %d, part %d [%d]: %g, graph %g", wd, workers, i, part, j, got[j], w[j])
						}
					}
				}
				for j, g := range ts[i].G {
					if g != 0 {
						t.Fatalf("gradient %d [%d] = %g after the update, want 0", i, j, g)
					}
				}
			}
		}
	}
}

// SumSquares is Σ g² over every gradient, to float32 accuracy.
func TestSumSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ts []Tensors
	want := 0.0
	for _, n := range []int{0, 5, 2*inPlaceChunk + 33} {
		g := make([]float32, n)
		for j := range g {
			g[j] = float32(rng.NormFloat64())
			want += float64(g[j]) * float64(g[j])
		}
		ts = append(ts, Tensors{G: g})
	}
	for _, workers := range []int{1, 2} {
		if got := SumSquares(ts, workers); math.Abs(got-want) > 1e-5*want {
			t.Errorf("%d workers: %g, want %g", workers, got, want)
		}
	}
}
