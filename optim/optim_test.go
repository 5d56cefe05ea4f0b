package optim

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
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
	if _, err := NewLRSchedule("linear", 1, 0, 0, 0); err == nil || !strings.Contains(err.Error(), "linear") {
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

// The cosine schedule's floor (lr_min) is where it ends and stays; its warmup
// still starts from the reference's warmup_lr_init 1e-6; a floor above the
// peak is refused.
func TestCosineFloor(t *testing.T) {
	cases := []struct {
		floor float64
		k     int
		want  float64
	}{
		{1e-6, 0, 1e-6},
		{1e-4, 0, 1e-6},
		{1e-4, 10, 1e-3},
		{1e-4, 60, 1e-4 + 0.5*(1e-3-1e-4)},
		{1e-4, 110, 1e-4},
		{1e-4, 1000, 1e-4},
		{0, 110, 0},
	}
	for _, c := range cases {
		s, err := NewLRSchedule("cosine", 1e-3, 10, 110, c.floor)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.LR(c.k); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("floor %g: LR(%d) = %g, want %g", c.floor, c.k, got, c.want)
		}
	}
	if _, err := NewLRSchedule("cosine", 1e-3, 10, 110, 2e-3); err == nil || !strings.Contains(err.Error(), "lr_min") {
		t.Errorf("floor above the peak: err = %v", err)
	}
	if s, _ := NewLRSchedule("constant", 1e-3, 0, 110, 0.5); s.LR(200) != 1e-3 {
		t.Error("the constant schedule has no floor")
	}
}

// One and two AdamW steps with betas and eps other than the defaults, against
// torch.optim.AdamW's update computed by hand (p 1, g 0.5 then −0.25,
// β1 0.8, β2 0.99, eps 1e-3, lr 0.1): m = lerp(m, g, 1 − β1),
// v = β2·v + (1 − β2)·g², p −= lr/(1 − β1^k)·m/(sqrt(v)/sqrt(1 − β2^k) + eps).
func TestAdamWBetasAndEps(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	a := AdamW{LR: 0.1, Beta1: 0.8, Beta2: 0.99, Eps: 1e-3}
	exec := MustNewExec(b, func(p, g, m, v, sc *Node) []*Node {
		np, nm, nv := a.Update([]*Node{p}, []*Node{g}, []*Node{m}, []*Node{v}, sc)
		return []*Node{np[0], nm[0], nv[0]}
	})
	p, m, v := float32(1), float32(0), float32(0)
	for k, c := range []struct{ g, want float64 }{{0.5, 0.9001996007984032}, {-0.25, 0.8791392554262303}} {
		out := exec.MustCall(tensors.FromScalar(p), tensors.FromScalar(float32(c.g)), tensors.FromScalar(m), tensors.FromScalar(v),
			tensors.FromFlatDataAndDimensions(a.Scalars(k+1, a.LR), NumScalars))
		p, m, v = tensors.ToScalar[float32](out[0]), tensors.ToScalar[float32](out[1]), tensors.ToScalar[float32](out[2])
		if math.Abs(float64(p)-c.want) > 1e-6 {
			t.Errorf("step %d: p = %v, want %v", k+1, p, c.want)
		}
	}
}
