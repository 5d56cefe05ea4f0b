package backbone

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/internal/layers"
)

// scanInputs are random selective-scan inputs in the ranges Mamba produces:
// Δ in (0, 0.5), A = −exp(A_log) with A_log near log(1..N).
type scanInputs struct {
	B, L, Din, N       int
	delta, x, bIn, cIn []float32
	A                  []float32
}

func newScanInputs(B, L, Din, N int, seed uint64) scanInputs {
	r := rand.New(rand.NewPCG(seed, 1))
	fill := func(n int, f func() float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(f())
		}
		return v
	}
	in := scanInputs{B: B, L: L, Din: Din, N: N}
	in.delta = fill(B*L*Din, func() float64 { return 0.5 * r.Float64() })
	in.x = fill(B*L*Din, r.NormFloat64)
	in.bIn = fill(B*L*N, r.NormFloat64)
	in.cIn = fill(B*L*N, r.NormFloat64)
	in.A = make([]float32, Din*N)
	for i := range in.A {
		in.A[i] = float32(-math.Exp(math.Log(float64(i%N+1)) + 0.1*r.NormFloat64()))
	}
	return in
}

// naiveScan is the recurrence step by step in float64.
func naiveScan(in scanInputs, reverse bool) []float64 {
	y := make([]float64, in.B*in.L*in.Din)
	for b := 0; b < in.B; b++ {
		h := make([]float64, in.Din*in.N)
		for s := 0; s < in.L; s++ {
			t := s
			if reverse {
				t = in.L - 1 - s
			}
			for d := 0; d < in.Din; d++ {
				dl := float64(in.delta[(b*in.L+t)*in.Din+d])
				u := dl * float64(in.x[(b*in.L+t)*in.Din+d])
				acc := 0.0
				for n := 0; n < in.N; n++ {
					i := d*in.N + n
					h[i] = math.Exp(dl*float64(in.A[i]))*h[i] + u*float64(in.bIn[(b*in.L+t)*in.N+n])
					acc += float64(in.cIn[(b*in.L+t)*in.N+n]) * h[i]
				}
				y[(b*in.L+t)*in.Din+d] = acc
			}
		}
	}
	return y
}

func runScan(t testing.TB, in scanInputs, reverse bool) []float32 {
	t.Helper()
	exec, err := NewExec(testBackend(t), func(delta, A, bIn, cIn, x *Node) *Node {
		return selectiveScan(delta, A, bIn, cIn, x, reverse)
	})
	if err != nil {
		t.Fatal(err)
	}
	B, L, Din, N := in.B, in.L, in.Din, in.N
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(in.delta, B, L, Din), tensors.FromFlatDataAndDimensions(in.A, Din, N),
		tensors.FromFlatDataAndDimensions(in.bIn, B, L, N), tensors.FromFlatDataAndDimensions(in.cIn, B, L, N),
		tensors.FromFlatDataAndDimensions(in.x, B, L, Din))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

// The chunked log-depth scan equals the step-by-step recurrence for every
// chunking (lengths that chunks do not divide included), in both directions.
func TestSelectiveScanMatchesRecurrence(t *testing.T) {
	defer func() { layers.ScanOverride = nil }()
	in := newScanInputs(2, 37, 6, 4, 3)
	for _, reverse := range []bool{false, true} {
		want := naiveScan(in, reverse)
		scale := 0.0
		for _, v := range want {
			scale = math.Max(scale, math.Abs(v))
		}
		for _, chunk := range []int{1, 3, 8, 16, 64} {
			layers.ScanOverride = &layers.ScanCut{Chunk: chunk}
			got := runScan(t, in, reverse)
			worst := 0.0
			for i := range want {
				worst = math.Max(worst, math.Abs(float64(got[i])-want[i]))
			}
			if worst > 1e-5*scale {
				t.Errorf("reverse=%v chunk %d: max|err| %.3g (scale %.3g)", reverse, chunk, worst, scale)
			}
		}
	}
}

// BenchmarkSelectiveScan times the scan alone at tiny-dimamba's inner sizes
// (Din 1024, N 16, one sequence) for L 1024 and 4096, forward and forward +
// backward, with the backend's default chunking: how its cost grows with L.
func BenchmarkSelectiveScan(b *testing.B) {
	for _, L := range []int{1024, 4096} {
		in := newScanInputs(1, L, 1024, 16, 5)
		for _, withGrad := range []bool{false, true} {
			name := fmt.Sprintf("L=%d/forward", L)
			if withGrad {
				name = fmt.Sprintf("L=%d/forward+backward", L)
			}
			b.Run(name, func(b *testing.B) {
				exec, err := NewExec(testBackend(b), func(delta, A, bIn, cIn, x *Node) []*Node {
					y := selectiveScan(delta, A, bIn, cIn, x, false)
					if !withGrad {
						return []*Node{ReduceAllSum(y)}
					}
					return Gradient(ReduceAllSum(y), delta, bIn, cIn, x)
				})
				if err != nil {
					b.Fatal(err)
				}
				args := []any{tensors.FromFlatDataAndDimensions(in.delta, 1, L, 1024), tensors.FromFlatDataAndDimensions(in.A, 1024, 16),
					tensors.FromFlatDataAndDimensions(in.bIn, 1, L, 16), tensors.FromFlatDataAndDimensions(in.cIn, 1, L, 16),
					tensors.FromFlatDataAndDimensions(in.x, 1, L, 1024)}
				if _, err := exec.Call(args...); err != nil { // compile outside the timing
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := exec.Call(args...); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(L)*float64(b.N)/b.Elapsed().Seconds(), "positions/s")
			})
		}
	}
}
