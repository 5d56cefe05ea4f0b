package sampler

import "github.com/gomlx/gomlx/core/tensors"

// rowCache tracks which rows' denoiser outputs are still valid.
type rowCache struct {
	probs *tensors.Tensor // [B, L, V], nil before the first evaluation
	valid []bool
	nfe   []int
}

func newRowCache(B int) *rowCache { return &rowCache{valid: make([]bool, B), nfe: make([]int, B)} }

// staleRows lists the rows that need a denoiser evaluation at this step.
func (c *rowCache) staleRows(kind Kind) []int {
	var stale []int
	for b, ok := range c.valid {
		if !ok || kind == DDPM {
			stale = append(stale, b)
		}
	}
	if kind == DDPMCache && len(stale) > 0 { // the reference recomputes the whole batch
		stale = stale[:0]
		for b := range c.valid {
			stale = append(stale, b)
		}
	}
	return stale
}

// store records fresh outputs for the given rows.
func (c *rowCache) store(probs *tensors.Tensor, rows []int) {
	if c.probs != nil && c.probs != probs {
		c.probs.FinalizeAll()
	}
	c.probs = probs
	for _, b := range rows {
		c.valid[b] = true
		c.nfe[b]++
	}
}

// afterStep invalidates rows per the sampler's rule: ddpm_cache keeps the cache
// only if no token of the batch changed (torch.allclose over the batch); the row
// cache keeps each row whose tokens did not change. Time conditioning disables
// caching (the denoiser output then depends on t).
func (c *rowCache) afterStep(kind Kind, prev, next []int32, L int, timeConditioned bool) {
	B := len(c.valid)
	changed := make([]bool, B)
	any := false
	for b := 0; b < B; b++ {
		for i := b * L; i < (b+1)*L; i++ {
			if prev[i] != next[i] {
				changed[b], any = true, true
				break
			}
		}
	}
	for b := range c.valid {
		switch {
		case kind == DDPM || timeConditioned:
			c.valid[b] = false
		case kind == DDPMCache:
			c.valid[b] = c.valid[b] && !any
		default:
			c.valid[b] = c.valid[b] && !changed[b]
		}
	}
}
