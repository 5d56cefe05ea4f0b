package train

import (
	"context"
	"fmt"
	"math"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/sampler"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// validationDue reports whether the current step validates.
func (t *trainer) validationDue() bool {
	c := t.cfg
	return t.valid != nil && c.EvalEvery > 0 && (t.state.Step%c.EvalEvery == 0 || t.state.Step == c.Steps)
}

// validate evaluates the EMA weights on the valid split (and, with a scorer,
// the generative perplexity of samples), records the metrics and keeps the
// best checkpoint (diffusion.py: on_validation_epoch_start, validation_step,
// on_validation_epoch_end). An interrupted validation returns the context's
// error and leaves the step unvalidated, so a resumed run validates it.
func (t *trainer) validate(ctx context.Context) (Metrics, error) {
	c := t.cfg
	res, err := t.eval.Perplexity(ctx, t.emaOrParams(), t.valid, c.Batch, c.Seed, c.EvalBlocks)
	if err != nil {
		return Metrics{}, err
	}
	vm := Metrics{Step: t.state.Step, ValNLL: res.NLL, ValPPL: res.PPL}
	if err := checkFinite(vm); err != nil {
		return Metrics{}, err
	}
	if t.scorer != nil {
		g, err := t.genPPL(ctx, t.ck.Model.Length)
		if err != nil && ctx.Err() != nil {
			return Metrics{}, err
		}
		if err != nil {
			return Metrics{}, fmt.Errorf("train: validation gen-ppl at step %d: %w", t.state.Step, err)
		}
		vm.ValGenPPL, vm.ValEntropy = g.GenPPL, g.Entropy
		if err := checkFinite(vm); err != nil {
			return Metrics{}, err
		}
	}
	t.record(vm)
	attrs := []any{"step", vm.Step, "val_nll", fmt.Sprintf("%.4f", res.NLL),
		"val_ppl", fmt.Sprintf("%.2f", res.PPL), "unigram_ppl", fmt.Sprintf("%.2f", res.UnigramPPL)}
	if c.GenPPLScorer != "" {
		attrs = append(attrs, "val_gen_ppl", fmt.Sprintf("%.2f", vm.ValGenPPL), "val_entropy", fmt.Sprintf("%.3f", vm.ValEntropy))
	}
	t.log.Info("validation (EMA weights)", attrs...)
	if err := t.keepBest(res.NLL); err != nil {
		return Metrics{}, err
	}
	t.validated = t.state.Step
	return vm, nil
}

// openScorer loads Config.GenPPLScorer (a directory or a hub reference).
func (t *trainer) openScorer() error {
	if t.cfg.GenPPLScorer == "" {
		return nil
	}
	if t.model.Param == diffusion.ARP {
		return fmt.Errorf("--gen-ppl-scorer: sampling an AR model during validation is not supported")
	}
	if t.ck.Tokenizer == "" {
		return fmt.Errorf("--gen-ppl-scorer: the training data names no tokenizer to decode samples with")
	}
	ck, err := checkpoint.OpenRef(context.Background(), t.cfg.GenPPLScorer, t.log)
	if err != nil {
		return fmt.Errorf("--gen-ppl-scorer: %w", err)
	}
	tokName, err := ck.Tokenizer()
	if err != nil {
		return fmt.Errorf("--gen-ppl-scorer: %w", err)
	}
	t.scorer, err = evaluate.NewScorer(t.b, ck.Config.Model, ck.ForInference(), tokName)
	if err != nil {
		return fmt.Errorf("--gen-ppl-scorer %s: %w", t.cfg.GenPPLScorer, err)
	}
	return nil
}

// genPPL is the reference's validation sampling: GenPPLSamples rows of the
// model length drawn with the EMA weights (ddpm_cache for loglinear SUBS,
// ddpm otherwise, analytic for SEDD; seeded by (seed, step)), decoded with the
// data's tokenizer and scored by the gen-PPL scorer.
func (t *trainer) genPPL(ctx context.Context, L int) (evaluate.GenResult, error) {
	w := &backbone.Weights{Config: t.ck.Model, Data: map[string][]float32{}, InvFreq: t.invFreq}
	if err := w.SetFromTensors(t.emaOrParams()); err != nil {
		return evaluate.GenResult{}, err
	}
	m := t.model
	s, err := sampler.New(t.b, m, w, t.cfg.Seed*1_000_003+int64(t.state.Step), nil)
	if err != nil {
		return evaluate.GenResult{}, err
	}
	N := max(1, t.cfg.GenPPLSamples)
	prior := make([]int32, N*L)
	for i := range prior {
		prior[i] = int32(m.Backbone.MaskIndex)
	}
	res, err := s.Sample(ctx, sampler.Options{Kind: validationSampler(m), Steps: max(1, t.cfg.GenPPLSteps), Eps: 1e-5, NoiseRemoval: true}, prior, N, L, nil)
	if err != nil {
		return evaluate.GenResult{}, err
	}
	rows, err := t.decode(res.Tokens, N, L)
	if err != nil {
		return evaluate.GenResult{}, err
	}
	return t.scorer.GenPPL(ctx, rows, evaluate.Scoring{Batch: min(8, N), MaxLength: L, Context: 1024})
}

// validationSampler is the sampler of the reference's validation samples:
// ddpm_cache for loglinear SUBS, analytic for SEDD, ddpm otherwise.
func validationSampler(m diffusion.Model) sampler.Kind {
	_, loglinear := m.Schedule.(diffusion.LogLinear)
	switch {
	case m.Param == diffusion.SEDD:
		return sampler.Analytic
	case m.Param == diffusion.SUBS && loglinear:
		return sampler.DDPMCache
	}
	return sampler.DDPM
}

// decode turns N sampled rows of length L into samples with the data's
// tokenizer's text.
func (t *trainer) decode(tokens []int32, N, L int) ([]datasets.Sample, error) {
	tok, err := tokenizer.Load(t.ck.Tokenizer)
	if err != nil {
		return nil, err
	}
	vocab, err := tokenizer.ForModel(tok)
	if err != nil {
		return nil, err
	}
	rows := make([]datasets.Sample, N)
	for i := range rows {
		ids := tokens[i*L : (i+1)*L]
		ints := make([]int, L)
		for j, x := range ids {
			ints[j] = int(x)
		}
		text, err := vocab.Decode(ints)
		if err != nil {
			return nil, err
		}
		rows[i] = datasets.Sample{Index: int64(i), Tokens: ids, Text: text}
	}
	return rows, nil
}

// checkFinite refuses validation metrics that JSON cannot carry (they would be
// dropped from metrics.jsonl): a NaN or infinite value stops the run like a
// non-finite loss, the last good checkpoint kept.
func checkFinite(m Metrics) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"val_nll", m.ValNLL}, {"val_ppl", m.ValPPL}, {"val_gen_ppl", m.ValGenPPL}, {"val_entropy", m.ValEntropy}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%w: validation at step %d: %s is %v (val_nll %v)", ErrNonFinite, m.Step, f.name, f.v, m.ValNLL)
		}
	}
	return nil
}
