package optim

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Tensors are one parameter's float32 arrays for UpdateInPlace: the parameter,
// its gradient and its two moments, all of one length. P, M and V are
// rewritten; G is read and left zero (an accumulator for the next step).
type Tensors struct{ P, G, M, V []float32 }

// inPlaceChunk is the elements a worker claims at a time: 256 KB per array,
// small enough that two workers share the last parameters evenly.
const inPlaceChunk = 64 << 10

// SumSquares is Σ g² over every gradient on up to workers goroutines (0:
// GOMAXPROCS): float32 vector lanes within a chunk of inPlaceChunk values
// (each lane sums a few thousand squares, as torch's vectorized norm does),
// float64 across lanes and chunks.
func SumSquares(ts []Tensors, workers int) float64 {
	var mu sync.Mutex
	total := 0.0
	forChunks(ts, workers, func(t Tensors, lo, hi int) {
		s := sumSquaresSpan(t.G[lo:hi])
		mu.Lock()
		total += s
		mu.Unlock()
	})
	return total
}

// sumSquaresScalar is Σ g² over a span in float64.
func sumSquaresScalar(g []float32) float64 {
	s := 0.0
	for _, x := range g {
		s += float64(x) * float64(x)
	}
	return s
}

// UpdateInPlace is Update for float32 arrays on the host, every parameter in
// one pass that reads p, g, m, v and writes p, m, v, on up to workers
// goroutines (0: GOMAXPROCS). gradScale multiplies every gradient first (the
// clip coefficient, and a micro-batch mean's 1/k); scalars are Scalars(k, lr).
// Every gradient is left zero. Each element goes through Update's float32
// operations in Update's order:
//
//	g ← gradScale·g
//	m ← m + (1 − β1)·(g − m)
//	v ← β2·v + (1 − β2)·g²
//	p ← p·(1 − lr·wd) − (m / (sqrt(v)/sqrt(1 − β2^k) + eps))·step_size
//
// On the Go backend a graph runs each of those elementwise operations as a
// pass of its own over the parameter's size (internal/layers' HostAdamW form).
func (a AdamW) UpdateInPlace(ts []Tensors, gradScale float32, scalars []float32, workers int) {
	c := adamConsts{
		gradScale: gradScale, b1: float32(1 - a.Beta1), b2: float32(a.Beta2), c2: float32(1 - a.Beta2),
		eps: float32(a.Eps), decay: scalars[0], stepSize: scalars[1], bc2: scalars[2], wd: a.WeightDecay != 0,
	}
	forChunks(ts, workers, func(t Tensors, lo, hi int) {
		updateSpan(t.P[lo:hi], t.G[lo:hi], t.M[lo:hi], t.V[lo:hi], &c)
	})
}

// adamConsts are UpdateInPlace's float32 constants.
type adamConsts struct {
	gradScale, b1, b2, c2, eps, decay, stepSize, bc2 float32
	wd                                               bool
}

// updateScalar is UpdateInPlace on one span, an element at a time (the
// vector form's tail, and the whole span in a build without GOEXPERIMENT=simd).
func updateScalar(p, g, m, v []float32, c *adamConsts) {
	for i := range p {
		gi := g[i] * c.gradScale
		mi := m[i] + (gi-m[i])*c.b1
		vi := v[i]*c.b2 + (gi*gi)*c.c2
		denom := float32(math.Sqrt(float64(vi)))/c.bc2 + c.eps
		pi := p[i]
		if c.wd {
			pi *= c.decay
		}
		p[i], m[i], v[i], g[i] = pi-(mi/denom)*c.stepSize, mi, vi, 0
	}
}

// forChunks calls fn on every inPlaceChunk-sized range of every parameter,
// the ranges claimed by up to workers goroutines from an atomic counter.
func forChunks(ts []Tensors, workers int, fn func(t Tensors, lo, hi int)) {
	type span struct{ t, lo, hi int }
	var spans []span
	for i, t := range ts {
		for lo := 0; lo < len(t.G); lo += inPlaceChunk {
			spans = append(spans, span{i, lo, min(lo+inPlaceChunk, len(t.G))})
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(spans)))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := int(next.Add(1)) - 1; k < len(spans); k = int(next.Add(1)) - 1 {
				s := spans[k]
				fn(ts[s.t], s.lo, s.hi)
			}
		})
	}
	wg.Wait()
}
