package train

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/optim"

	"github.com/mdlm-go/mdlm/internal/layers"
)

// A small DiMamba trains under the SUBS objective: on a fixed batch of
// periodic sequences the loss falls well below its starting value, in float32
// and with bf16 matmuls, with dropout, and with the scan cut into several
// gradient-checkpointed chunks.
func TestDiMambaTrainStep(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { layers.ScanOverride = nil }()
	layers.ScanOverride = &layers.ScanCut{Chunk: 8, Checkpoint: true}
	const B, L, V = 4, 24, 12
	cfg := backbone.Config{Arch: backbone.DiMamba, Vocab: V, Hidden: 32, Blocks: 2, Cond: 16, Length: L, MaskIndex: V - 1, Dropout: 0.1}.WithMambaDefaults()
	m := diffusion.Model{Backbone: cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: 1e-3}}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := diffusion.Batch{B: B, L: L}
	for i := 0; i < B*L; i++ {
		x := int32((i%L + i/L) % 5)
		batch.X0 = append(batch.X0, x)
		batch.TokenMask = append(batch.TokenMask, 1)
	}
	for _, prec := range []dtypes.DType{dtypes.InvalidDType, dtypes.BFloat16} {
		w, err := backbone.NewWeights(cfg, 7)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewStep(b, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 3e-3}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.MixedPrecision = prec
		st, err := NewState(w, 1, dtypes.Float32)
		if err != nil {
			t.Fatal(err)
		}
		var first, last float32
		for k := 0; k < 60; k++ {
			noised := batch
			noised.XT, noised.T, noised.Sigma, noised.DSigma = diffusion.NoiseBatch(m, batch.X0, B, L, rng)
			res, err := s.Run(st, noised)
			if err != nil {
				t.Fatal(err)
			}
			if k < 5 {
				first += res.Loss / 5
			}
			if k >= 55 {
				last += res.Loss / 5
			}
		}
		t.Logf("precision %v: loss %.3f (first 5 steps) -> %.3f (last 5)", prec, first, last)
		if !(last < 0.6*first) {
			t.Errorf("precision %v: loss fell only from %.3f to %.3f", prec, first, last)
		}
	}
}

// D3PM (T 1000) and SEDD (time-conditioned) train a DiMamba too: finite losses
// that fall over a few steps on the same fixed batch.
func TestDiMambaOtherParameterizations(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const B, L, V = 4, 16, 12
	cfg := backbone.Config{Arch: backbone.DiMamba, Vocab: V, Hidden: 32, Blocks: 1, Cond: 16, Length: L, MaskIndex: V - 1}.WithMambaDefaults()
	for _, m := range []diffusion.Model{
		{Backbone: cfg, Param: diffusion.D3PM, T: 1000, Schedule: diffusion.LogLinear{Eps: 1e-3}},
		{Backbone: cfg, Param: diffusion.SEDD, TimeConditioning: true, Schedule: diffusion.LogLinear{Eps: 1e-3}},
	} {
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		w, _ := backbone.NewWeights(cfg, 3)
		s, err := NewStep(b, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 3e-3}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := NewState(w, 1, dtypes.Float32)
		batch := diffusion.Batch{B: B, L: L, T: make([]float32, B), XT: make([]int32, B*L)}
		for i := 0; i < B*L; i++ {
			batch.X0 = append(batch.X0, int32(i%5))
			batch.TokenMask = append(batch.TokenMask, 1)
			batch.XT[i] = int32(i % 5)
			if i%3 == 0 {
				batch.XT[i] = V - 1
			}
		}
		for i := range batch.T {
			batch.T[i] = 0.5
		}
		batch.Sigma, batch.DSigma = diffusion.SigmaDSigma(m.Schedule, batch.T)
		var losses []float32
		for k := 0; k < 20; k++ {
			res, err := s.Run(st, batch)
			if err != nil {
				t.Fatalf("%s: %v", m.Param, err)
			}
			losses = append(losses, res.Loss)
		}
		t.Logf("%s: loss %.4f -> %.4f", m.Param, losses[0], losses[len(losses)-1])
		if !(losses[len(losses)-1] < losses[0]) {
			t.Errorf("%s: loss did not fall: %v", m.Param, losses)
		}
	}
}
