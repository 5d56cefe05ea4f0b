package optim

import (
	"math"
	"strings"
	"testing"
)

func TestLRSchedules(t *testing.T) {
	cw := ConstantWarmup{Peak: 3e-4, Warmup: 2500}
	cases := []struct {
		s    LRSchedule
		k    int
		want float64
	}{
		{cw, 0, 0}, {cw, 1250, 1.5e-4}, {cw, 2500, 3e-4}, {cw, 1_000_000, 3e-4},
		{ConstantWarmup{Peak: 1e-3}, 0, 1e-3},
		{CosineWarmup{Peak: 1e-3, Min: 1e-6, WarmupInit: 1e-6, Warmup: 10, Total: 110}, 0, 1e-6},
		{CosineWarmup{Peak: 1e-3, Min: 1e-6, WarmupInit: 1e-6, Warmup: 10, Total: 110}, 10, 1e-3},
		{CosineWarmup{Peak: 1e-3, Min: 1e-6, WarmupInit: 1e-6, Warmup: 10, Total: 110}, 60, 1e-6 + 0.5*(1e-3-1e-6)},
		{CosineWarmup{Peak: 1e-3, Min: 1e-6, WarmupInit: 1e-6, Warmup: 10, Total: 110}, 500, 1e-6},
	}
	for _, c := range cases {
		if got := c.s.LR(c.k); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%T.LR(%d) = %g, want %g", c.s, c.k, got, c.want)
		}
	}
	if _, err := NewLRSchedule("linear", 1, 0, 0); err == nil || !strings.Contains(err.Error(), "linear") {
		t.Errorf("unknown schedule: err = %v", err)
	}
}

// Scalars must follow torch's Python-side arithmetic: step_size = lr/(1 − β1^k),
// bias_correction2_sqrt = sqrt(1 − β2^k).
func TestAdamWScalars(t *testing.T) {
	a := DefaultAdamW()
	a.WeightDecay = 0.1
	got := a.Scalars(1, 3e-4)
	want := []float64{1 - 3e-5, 3e-4 / 0.1, math.Sqrt(0.001)}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-7*math.Abs(want[i]) {
			t.Errorf("Scalars(1)[%d] = %g, want %g", i, got[i], want[i])
		}
	}
	bad := []AdamW{{LR: -1, Beta1: .9, Beta2: .999, Eps: 1e-8}, {Beta1: 1, Beta2: .9, Eps: 1e-8}, {Beta1: .9, Beta2: .9, Eps: 0}}
	for _, b := range bad {
		if b.Validate() == nil {
			t.Errorf("%+v validated", b)
		}
	}
}
