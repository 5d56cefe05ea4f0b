package main

import (
	"math"
	"testing"
)

// TestMedianInterval checks the order statistics chosen against the binomial
// tables: the interval's ranks are the largest k with P(Binomial(n, 1/2) < k)
// at most 2.5%.
func TestMedianInterval(t *testing.T) {
	for _, tc := range []struct {
		n, k int // k: the 1-based rank of the interval's low end
	}{
		{1, 1}, {5, 1}, {6, 1}, {7, 1}, {8, 1}, {9, 2}, {10, 2}, {12, 3},
		{20, 6}, {25, 8}, {50, 18},
	} {
		xs := make([]float64, tc.n)
		for i := range xs {
			xs[i] = float64(i + 1)
		}
		lo, hi := medianInterval(xs)
		if lo != float64(tc.k) || hi != float64(tc.n+1-tc.k) {
			t.Errorf("n=%d: interval [%v, %v], want ranks [%d, %d]", tc.n, lo, hi, tc.k, tc.n+1-tc.k)
		}
		if tc.n >= 6 { // the coverage the ranks give is at least 95%, and one rank further in is not
			if c := coverage(tc.n, tc.k); c < 0.95 {
				t.Errorf("n=%d k=%d: coverage %.4f under 95%%", tc.n, tc.k, c)
			}
			if c := coverage(tc.n, tc.k+1); c >= 0.95 {
				t.Errorf("n=%d: rank %d would still cover %.4f", tc.n, tc.k+1, c)
			}
		}
	}
}

// coverage is 1 - 2 P(Binomial(n, 1/2) < k), summed term by term.
func coverage(n, k int) float64 {
	tail := 0.0
	for i := range k {
		tail += binom(n, i) * math.Pow(0.5, float64(n))
	}
	return 1 - 2*tail
}

func binom(n, k int) float64 {
	r := 1.0
	for i := range k {
		r = r * float64(n-i) / float64(i+1)
	}
	return r
}
