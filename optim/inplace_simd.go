//go:build goexperiment.simd

package optim

import "simd"

// updateSpan is updateScalar a vector at a time: the same float32 operations
// in the same order (no fused multiply-add), so the values are the same. The
// scalar loop was bound by its square root and division, at about 3 ns an
// element (bench/README.md, "Round 2026-12-05 night").
func updateSpan(p, g, m, v []float32, c *adamConsts) {
	scale, b1 := simd.BroadcastFloat32s(c.gradScale), simd.BroadcastFloat32s(c.b1)
	b2, c2 := simd.BroadcastFloat32s(c.b2), simd.BroadcastFloat32s(c.c2)
	bc2, eps := simd.BroadcastFloat32s(c.bc2), simd.BroadcastFloat32s(c.eps)
	decay, step := simd.BroadcastFloat32s(c.decay), simd.BroadcastFloat32s(c.stepSize)
	zero := simd.BroadcastFloat32s(0)
	n := scale.Len()
	i := 0
	for ; i+n <= len(p); i += n {
		gi := simd.LoadFloat32s(g[i:]).Mul(scale)
		mOld := simd.LoadFloat32s(m[i:])
		mi := mOld.Add(gi.Sub(mOld).Mul(b1))
		vi := simd.LoadFloat32s(v[i:]).Mul(b2).Add(gi.Mul(gi).Mul(c2))
		denom := vi.Sqrt().Div(bc2).Add(eps)
		pi := simd.LoadFloat32s(p[i:])
		if c.wd {
			pi = pi.Mul(decay)
		}
		pi.Sub(mi.Div(denom).Mul(step)).Store(p[i:])
		mi.Store(m[i:])
		vi.Store(v[i:])
		zero.Store(g[i:])
	}
	updateScalar(p[i:], g[i:], m[i:], v[i:], c)
}

// sumSquaresSpan is Σ g² over a span, in float32 lanes summed in float64.
func sumSquaresSpan(g []float32) float64 {
	acc := simd.BroadcastFloat32s(0)
	n := acc.Len()
	i := 0
	for ; i+n <= len(g); i += n {
		x := simd.LoadFloat32s(g[i:])
		acc = acc.Add(x.Mul(x))
	}
	var buf [64]float32 // more lanes than any vector has
	lanes := buf[:n]
	acc.Store(lanes)
	total := sumSquaresScalar(g[i:])
	for _, l := range lanes {
		total += float64(l)
	}
	return total
}
