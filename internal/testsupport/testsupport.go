// Package testsupport holds the helpers tests of several packages share: the
// reference fixture's model, small models with known weights. The fixtures
// themselves are found and read by internal/reffix; stages are run as the
// command line runs them by internal/stagetest. This package imports backbone,
// so backbone's own tests cannot use it (they build their configs in place).
package testsupport

import (
	"testing"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/internal/reffix"
)

// FixtureDiT is the reference fixture's DiT: its sizes from config.json and
// its weights from dit.safetensors.
func FixtureDiT(t testing.TB, fx reffix.Fixture) (backbone.Config, *backbone.Weights) {
	t.Helper()
	c := fx.Config
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: c.Vocab, Hidden: c.Hidden, Heads: c.Heads,
		Blocks: c.Blocks, Cond: c.Cond, Length: c.Length, MaskIndex: c.MaskIndex}
	w, err := backbone.LoadWeights(fx.Open(t, "dit.safetensors"), cfg)
	if err != nil {
		t.Fatalf("reference fixture %s: %v", fx.Name, err)
	}
	return cfg, w
}

// TinyDiT is a one-block DiT over a vocabulary of 24 (mask 23) and length L
// with seeded weights and a non-zero output layer, so its denoiser is not
// uniform: small enough for sampler and step tests to run in milliseconds.
func TinyDiT(t testing.TB, L int) (backbone.Config, *backbone.Weights) {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 24, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: L, MaskIndex: 23}
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32((i*7919)%13-6) * 0.05
	}
	return cfg, w
}
