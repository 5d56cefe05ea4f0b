package layers

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/optim"
)

// BenchmarkClipAdamW times the optimizer alone on one vocabulary-sized
// parameter (the tiny config's [50258, 512]): global norm, clip and AdamW,
// plain, FoldedAdamW and HostAdamW's in-place pass (bench/README.md, "Round 2026-12-05 evening: the
// tiny step's optimizer").
//
//	go test -run '^$' -bench ClipAdamW -benchtime 20x ./internal/layers
func BenchmarkClipAdamW(b *testing.B) {
	const V, D = 50258, 512
	opt := optim.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	in := make([]*tensors.Tensor, 4)
	for i := range in {
		in[i] = tensors.FromShape(shapes.Make(dtypes.Float32, V, D))
	}
	scalars := tensors.FromFlatDataAndDimensions(opt.Scalars(3, opt.LR), optim.NumScalars)
	for _, form := range []string{"plain", "folded"} {
		b.Run(form, func(b *testing.B) {
			be, err := backend.Shared()
			if err != nil {
				b.Fatal(err)
			}
			off := string(FoldedAdamW)
			if form == "folded" {
				off = ""
			}
			SetForms(off)
			defer SetForms("")
			timeExec(b, MustNewExec(be, func(p, g, m, v, s *Node) []*Node {
				norm, ready, update := ClipAdamW(opt, 1, []*Node{g}, s)
				np, nm, nv := update([]*Node{p}, ready, []*Node{m}, []*Node{v})
				return []*Node{np[0], nm[0], nv[0], norm}
			}), in[0], in[1], in[2], in[3], scalars)
		})
	}
	// HostAdamW's form of the same work: the norm and one in-place pass.
	b.Run("host", func(b *testing.B) {
		ts := []optim.Tensors{{P: make([]float32, V*D), G: make([]float32, V*D), M: make([]float32, V*D), V: make([]float32, V*D)}}
		sc := opt.Scalars(3, opt.LR)
		for range b.N {
			norm := math.Sqrt(optim.SumSquares(ts, 0))
			opt.UpdateInPlace(ts, float32(math.Min(1/(norm+1e-6), 1)), sc, 0)
		}
	})
}
