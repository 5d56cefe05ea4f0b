package train

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/optim"
)

// TestUpdateInTurn: the update made in turn has opt.Update's values, and the
// parameters of minBytes or more are chained largest first through
// SchedulingBarriers on their gradients (the smaller ones are not).
func TestUpdateInTurn(t *testing.T) {
	be, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	dims := [][]int{{4, 3}, {2, 2}, {8, 3}, {5, 3}} // 48, 16, 96, 60 bytes
	tests := []struct {
		name     string
		minBytes uintptr
		chain    [][2]int // (gradient of, after the new value of) per barrier
	}{
		{"none big", 1 << 20, nil},
		{"one big", 90, nil},
		{"three big", 40, [][2]int{{3, 2}, {0, 3}}},
	}
	n := len(dims)
	opt := optim.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	args := []any{}
	for k := range 4 * n {
		d := dims[k%n]
		v := make([]float32, d[0]*d[1])
		for i := range v {
			v[i] = float32((k+1)*(i+3)%17)/17 - 0.3
			if k/n == 3 { // second moments are not negative
				v[i] = v[i] * v[i]
			}
		}
		args = append(args, tensors.FromFlatDataAndDimensions(v, d...))
	}
	args = append(args, tensors.FromFlatDataAndDimensions(opt.Scalars(3, 1e-2), optim.NumScalars))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var barriers [][2]int
			exec := MustNewExec(be, func(g *Graph, in []*Node) []*Node {
				params, grads, m, v := in[:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n]
				wantP, wantM, wantV := opt.Update(params, grads, m, v, in[4*n])
				update := func(params, grads, m, v []*Node) (newP, newM, newV []*Node) {
					return opt.Update(params, grads, m, v, in[4*n])
				}
				gotP, gotM, gotV := updateInTurn(update, params, grads, m, v, tc.minBytes)
				barriers = findBarriers(gotP, grads)
				out := append(append(append([]*Node{}, wantP...), wantM...), wantV...)
				return append(append(append(out, gotP...), gotM...), gotV...)
			})
			out, err := exec.Call(args...)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 * n {
				want, got := tensors.MustCopyFlatData[float32](out[i]), tensors.MustCopyFlatData[float32](out[3*n+i])
				for j := range want {
					if want[j] != got[j] {
						t.Fatalf("output %d[%d]: got %g, want opt.Update's %g", i, j, got[j], want[j])
					}
				}
			}
			if len(barriers) != len(tc.chain) {
				t.Fatalf("barriers %v, want %v", barriers, tc.chain)
			}
			for i := range barriers {
				if barriers[i] != tc.chain[i] {
					t.Fatalf("barriers %v, want %v", barriers, tc.chain)
				}
			}
		})
	}
}

// findBarriers walks back from each new parameter to the SchedulingBarrier on
// its gradient and names (parameter, parameter whose new value it waits for),
// in parameter order of the barriers found.
func findBarriers(newP, grads []*Node) [][2]int {
	index := func(nodes []*Node, x *Node) int {
		for i, y := range nodes {
			if y == x {
				return i
			}
		}
		return -1
	}
	var out [][2]int
	seen := map[*Node]bool{}
	var walk func(x *Node, depth int)
	walk = func(x *Node, depth int) {
		if seen[x] || depth > 64 {
			return
		}
		seen[x] = true
		if x.Type() == NodeTypeSchedulingBarrier {
			in := x.Inputs()
			out = append(out, [2]int{index(grads, in[0]), index(newP, in[1])})
			return
		}
		for _, y := range x.Inputs() {
			walk(y, depth+1)
		}
	}
	// Largest first, as the chain runs: 2, 3, 0.
	for _, i := range []int{2, 3, 0, 1} {
		walk(newP[i], 0)
	}
	return out
}
