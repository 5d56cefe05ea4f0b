//go:build !goexperiment.simd

package optim

// updateSpan is updateScalar where the build has no simd package.
func updateSpan(p, g, m, v []float32, c *adamConsts) { updateScalar(p, g, m, v, c) }

// sumSquaresSpan is sumSquaresScalar where the build has no simd package.
func sumSquaresSpan(g []float32) float64 { return sumSquaresScalar(g) }
