package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
)

// loop takes optimizer steps until Config.Steps (or StopAfter), logging,
// validating and checkpointing at their cadences. On an interrupt it
// checkpoints the last step taken and returns the context's error.
func (t *trainer) loop(ctx context.Context) (*Metrics, error) {
	cfg := t.cfg
	perms := &permCache{seed: cfg.Seed, n: t.train.NumRows()}
	var last Metrics
	start, tokens := time.Now(), 0
	taken := 0
	if t.state.Step > 0 && t.validated < t.state.Step && t.validationDue() {
		// Resumed from a checkpoint written while this step's validation was
		// interrupted: validate it now, as an uninterrupted run did.
		if _, err := t.validate(ctx); err != nil {
			return nil, err
		}
	}
	for t.state.Step < cfg.Steps {
		if ctx.Err() != nil { // Ctrl-C: keep what we have
			if err := t.save(); err != nil {
				return nil, err
			}
			return &last, ctx.Err()
		}
		k := t.state.Step
		micro, rngs, err := t.microBatches(k, perms)
		if err != nil {
			return nil, err
		}
		res, err := t.step.RunAccum(t.state, micro, rngs)
		if err != nil {
			return nil, err
		}
		if math.IsNaN(float64(res.Loss)) || math.IsInf(float64(res.Loss), 0) {
			return nil, fmt.Errorf("%w at step %d (loss %v): stopped; the last good checkpoint is kept in %s",
				ErrNonFinite, k+1, res.Loss, filepath.Join(t.work, checkpoint.CheckpointsDir))
		}
		if err := t.updateEMA(); err != nil {
			return nil, err
		}
		tokens += len(micro) * micro[0].B * micro[0].L
		taken++
		last = Metrics{Step: t.state.Step, Loss: float64(res.Loss), LR: res.LR, GradNorm: float64(res.GradNorm),
			TokensPerSec: float64(tokens) / time.Since(start).Seconds()}
		if cfg.LogEvery > 0 && (t.state.Step%cfg.LogEvery == 0 || t.state.Step == cfg.Steps) {
			t.record(last)
			t.log.Info("step", "step", last.Step, "loss", fmt.Sprintf("%.4f", last.Loss), "lr", last.LR,
				"grad_norm", fmt.Sprintf("%.3f", last.GradNorm), "tokens_per_sec", int(last.TokensPerSec))
		}
		if t.progress != nil {
			t.progress(t.state.Step, cfg.Steps, last.Loss, last.TokensPerSec)
		}
		if t.validationDue() {
			vm, err := t.validate(ctx)
			if err != nil && ctx.Err() != nil { // interrupted mid-evaluation: the step itself is done, keep it
				if err := t.save(); err != nil {
					return nil, err
				}
				return &last, ctx.Err()
			}
			if err != nil {
				return nil, err
			}
			last.ValNLL, last.ValPPL, last.ValGenPPL, last.ValEntropy = vm.ValNLL, vm.ValPPL, vm.ValGenPPL, vm.ValEntropy
		}
		if (cfg.CheckpointEvery > 0 && t.state.Step%cfg.CheckpointEvery == 0) || t.state.Step == cfg.Steps {
			if err := t.save(); err != nil {
				return nil, err
			}
		}
		if cfg.StopAfter > 0 && taken == cfg.StopAfter {
			break
		}
	}
	return &last, nil
}

// microBatches are the Accum micro-batches of step k, each with the dropout
// RNG state of its own seed.
func (t *trainer) microBatches(k int, perms *permCache) ([]diffusion.Batch, []*tensors.Tensor, error) {
	accum := max(1, t.cfg.Accum)
	micro := make([]diffusion.Batch, 0, accum)
	rngs := make([]*tensors.Tensor, 0, accum)
	for a := 0; a < accum; a++ {
		mk := k*accum + a
		b, err := t.batch(t.train, mk, perms)
		if err != nil {
			return nil, nil, fmt.Errorf("train: batch of step %d: %w", k+1, err)
		}
		micro = append(micro, b)
		rng, err := RNGStateFromSeed(t.cfg.Seed*1_000_003 + int64(mk))
		if err != nil {
			return nil, nil, fmt.Errorf("train: dropout seed of step %d: %w", k+1, err)
		}
		rngs = append(rngs, rng)
	}
	return micro, rngs, nil
}

// batch builds micro-batch k (step·accum + micro): rows from the epoch's
// permutation, cropped at a start seeded by (seed, k) with --random-crop,
// noise seeded by (seed, k).
func (t *trainer) batch(data *datasets.PackedArrow, k int, perms *permCache) (diffusion.Batch, error) {
	B, L := t.cfg.Batch, data.L
	idx := make([]int, B)
	for j := range idx {
		g := k*B + j
		idx[j] = perms.get(g / data.NumRows())[g%data.NumRows()]
	}
	x0, mask := data.Rows(idx)
	if t.crop != nil {
		var err error
		start := diffusion.CropStart(t.cfg.Seed, k, t.crop.L)
		if x0, mask, L, err = t.crop.Apply(x0, mask, B, start, t.model.Param == diffusion.ARP); err != nil {
			return diffusion.Batch{}, err
		}
	}
	return diffusion.NewBatch(t.model, x0, mask, B, L, rand.New(rand.NewPCG(uint64(t.cfg.Seed), uint64(k)))), nil
}

// permCache keeps the current epoch's permutation.
type permCache struct {
	seed  int64
	n     int
	epoch int
	perm  []int
}

func (p *permCache) get(epoch int) []int {
	if p.perm == nil || epoch != p.epoch {
		p.epoch = epoch
		p.perm = rand.New(rand.NewPCG(uint64(p.seed), uint64(epoch)+1<<40)).Perm(p.n)
	}
	return p.perm
}

// record appends m to the history and to metrics.jsonl.
func (t *trainer) record(m Metrics) {
	t.history = append(t.history, m)
	raw, err := json.Marshal(m)
	if err != nil { // checkFinite keeps non-finite values out; never drop a line unreported
		t.log.Error("metrics record not written", "file", MetricsFile, "step", m.Step, "err", err)
		return
	}
	t.metrics.Write(append(raw, '\n'))
	t.metrics.Sync()
}
