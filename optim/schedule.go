package optim

import (
	"fmt"
	"math"
)

// LRSchedule gives the learning rate at optimizer step k (0-based: the rate used
// by the k-th update).
type LRSchedule interface {
	LR(k int) float64
}

// ConstantWarmup is transformers.get_constant_schedule_with_warmup:
// lr·min(1, k/warmup).
type ConstantWarmup struct {
	Peak   float64
	Warmup int
}

func (s ConstantWarmup) LR(k int) float64 {
	if s.Warmup > 0 && k < s.Warmup {
		return s.Peak * float64(k) / float64(s.Warmup)
	}
	return s.Peak
}

// CosineWarmup is the reference's cosine_decay_warmup (timm CosineLRScheduler,
// t_in_epochs=False): linear warmup from WarmupInit to Peak over Warmup steps,
// then a half cosine from Peak to Min at Total steps, Min afterwards.
type CosineWarmup struct {
	Peak, Min, WarmupInit float64
	Warmup, Total         int
}

func (s CosineWarmup) LR(k int) float64 {
	if k < s.Warmup {
		return s.WarmupInit + float64(k)*(s.Peak-s.WarmupInit)/float64(s.Warmup)
	}
	span := s.Total - s.Warmup
	if span <= 0 || k >= s.Total {
		return s.Min
	}
	frac := float64(k-s.Warmup) / float64(span)
	return s.Min + 0.5*(s.Peak-s.Min)*(1+math.Cos(math.Pi*frac))
}

// CosineFloor is the reference cosine schedule's floor and warmup start
// (configs/lr_scheduler/cosine_decay_warmup.yaml: lr_min, warmup_lr_init).
const CosineFloor = 1e-6

// NewLRSchedule builds a schedule by name: "constant" (constant_warmup) or
// "cosine" (cosine_decay_warmup, decaying to floor, the reference's lr_min;
// the warmup starts from CosineFloor, its warmup_lr_init). The constant
// schedule has no floor.
func NewLRSchedule(name string, peak float64, warmup, total int, floor float64) (LRSchedule, error) {
	switch name {
	case "constant", "constant_warmup":
		return ConstantWarmup{Peak: peak, Warmup: warmup}, nil
	case "cosine", "cosine_decay_warmup":
		if floor < 0 || floor > peak {
			return nil, fmt.Errorf("lr schedule cosine: floor (lr_min) %g must be in [0, the peak lr %g]", floor, peak)
		}
		return CosineWarmup{Peak: peak, Min: floor, WarmupInit: CosineFloor, Warmup: warmup, Total: total}, nil
	}
	return nil, fmt.Errorf("unknown lr schedule %q (known: constant, cosine)", name)
}
