package backbone

import (
	"strings"
	"testing"
)

func TestParameterCounts(t *testing.T) {
	cases := []struct {
		preset string
		arch   Arch
		want   int
	}{
		{"small", DiT, 169_627_218}, // models/dit.py: DIT, GPT-2 vocabulary + [MASK]
		{"small", AR, 162_246_482},  // models/autoregressive.py: AR
		// tiny-dimamba (D 512, Din 1024, N 16, d_conv 4, dt_rank 32, C 128, 14 blocks):
		// sigma_map 49,408; embedding and lm_head 25,732,096 each; per block the
		// forward Mamba 1,694,720, the reverse one without its tied projections
		// 121,856, norm 512, adaLN 198,144; final adaLN 132,096 and norm 512.
		{"tiny-dimamba", DiMamba, 79_859_456},
	}
	for _, c := range cases {
		cfg, err := Preset(c.preset, c.arch, 50258, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.NumParams(); got != c.want {
			t.Errorf("%s %s: %d parameters, want %d", c.preset, c.arch, got, c.want)
		}
	}
	small, _ := Preset("small", DiT, 50258, 1024)
	perBlock := 0
	for _, s := range small.Specs() {
		if strings.HasPrefix(s.Name, "blocks.0.") {
			perBlock += s.Size()
		}
	}
	if perBlock != 7_677_696 {
		t.Errorf("small DiT block: %d parameters, want 7,677,696", perBlock)
	}
}

func TestPresetArchitectures(t *testing.T) {
	if _, err := Preset("tiny-dimamba", DiT, 100, 64); err == nil || !strings.Contains(err.Error(), "dimamba") {
		t.Errorf("tiny-dimamba as a DiT: err = %v", err)
	}
	if _, err := Preset("small", DiMamba, 100, 64); err == nil || !strings.Contains(err.Error(), "tiny-dimamba") {
		t.Errorf("small as a DiMamba: err = %v", err)
	}
	c, err := Preset("tiny-dimamba", DiMamba, 100, 64)
	if err != nil {
		t.Fatal(err)
	}
	if c.DState != 16 || c.DConv != 4 || c.Expand != 2 || c.DtRank != 32 || c.Rotary() {
		t.Errorf("tiny-dimamba sizes: %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Arch: DiT, Vocab: 10, Hidden: 8, Heads: 2, Blocks: 1, Cond: 4, MaskIndex: 9}
	cases := []struct {
		name    string
		mutate  func(*Config)
		mention string
	}{
		{"ok", func(*Config) {}, ""},
		{"arch", func(c *Config) { c.Arch = "mamba" }, "arch"},
		{"heads divide", func(c *Config) { c.Heads = 3 }, "does not divide"},
		{"odd head", func(c *Config) { c.Hidden, c.Heads = 6, 2 }, "even"},
		{"mask", func(c *Config) { c.MaskIndex = 10 }, "mask_index"},
		{"vocab", func(c *Config) { c.Vocab = 0 }, "vocab_size"},
		{"cond", func(c *Config) { c.Cond = 0 }, "cond_dim"},
		{"dropout", func(c *Config) { c.Dropout = 1 }, "dropout"},
	}
	for _, c := range cases {
		cfg := good
		c.mutate(&cfg)
		err := cfg.Validate()
		if c.mention == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.mention)
		}
	}
}

func TestRotaryInvFreq(t *testing.T) {
	inv := RotaryInvFreq(64)
	if len(inv) != 32 || inv[0] != 1 || inv[1] < 0.749893 || inv[1] > 0.749895 {
		t.Errorf("inv_freq = %v..., want [1, 0.749894, ...]", inv[:2])
	}
}

// At initialisation the output layer is zero (models/dit.py: DDitFinalLayer), so
// the DiT's logits are exactly 0 and SUBS starts uniform over the real vocabulary.
func TestInitialLogitsAreZero(t *testing.T) {
	cfg := Config{Arch: DiT, Vocab: 16, Hidden: 8, Heads: 2, Blocks: 2, Cond: 4, Length: 5, MaskIndex: 15}
	w, err := NewWeights(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	out := runForward(t, w, []int32{1, 2, 3, 15, 15}, 1, 5, []float32{0.3})
	for i, v := range out {
		if v != 0 {
			t.Fatalf("logit %d = %g, want 0", i, v)
		}
	}
	emb := w.Data["vocab_embed.embedding"]
	for _, v := range emb {
		if v > 1/float32(2.8284) || v < -1/float32(2.8284) { // U(−1/√D, 1/√D), D = 8
			t.Fatalf("embedding entry %g outside ±1/sqrt(8)", v)
		}
	}
}
