package backbone

// DiMamba (models/dimamba.py: DiMamba with temb_strategy adaln and an untied
// head): a Caduceus-style bidirectional Mamba denoiser. For indices [B, L] and
// sigma [B]:
//
//	c = SiLU(sigma_map(σ))                                  the DiT's TimestepEmbedder, width C
//	x = word_embeddings[indices]                            [B, L, D]
//	per block: (shift, scale, gate) = adaLN_modulation(c)
//	    h = modulate(RMSNorm(x), shift, scale)
//	    x = x + gate · dropout(Mamba_fwd(h) + flip(Mamba_rev(flip(h))))
//	(shift, scale) = adaLN_modulation_final(c)
//	logits = lm_head(modulate(RMSNorm_f(x), shift, scale))  no bias
//
// The reference's layer loop unpacks each block's residual into a misspelled
// variable, so no residual is ever carried into the next block's fused
// add+norm; the residual add above is the adaLN block's own
// (models/dimamba.py: BiMambaMixerModel.forward).
//
// Mamba(h), per direction, with Din = expand·D, N = d_state, R = dt_rank:
//
//	(x, z) = in_proj(h)                                     [B, L, Din] each
//	x = SiLU(depthwise causal conv1d(x) + bias)             kernel d_conv, truncated to L
//	(dt, Bₜ, Cₜ) = x_proj(x)                                [R], [N], [N]
//	Δ = softplus(dt_proj.weight·dt + dt_proj.bias)          [B, L, Din]
//	A = −exp(A_log)                                         [Din, N]
//	hₜ = exp(Δₜ A) ⊙ hₜ₋₁ + Δₜ Bₜ xₜ ;  yₜ = Cₜ·hₜ + D ⊙ xₜ  (selectiveScan, scan.go)
//	out_proj(y ⊙ SiLU(z))
//
// The reverse Mamba ties in_proj and out_proj to the forward one's; flip(M(flip
// h)) is computed without flipping: its convolution looks ahead instead of back
// and its scan runs from the last position to the first, which is the same
// function (and needs no Reverse, which has no gradient in GoMLX v0.28.2).

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive

	"github.com/mdlm-go/mdlm/internal/layers"
)

// DiMamba is the bidirectional Mamba denoiser (models/dimamba.py).
const DiMamba Arch = "dimamba"

// DiMamba parameter name prefixes: the reference's DiMamba.state_dict() names.
const (
	dimambaBody = "model.bimamba.backbone."
	dimambaEmb  = dimambaBody + "embeddings.word_embeddings.weight"
	dimambaHead = "model.lm_head.weight"
)

// dimambaLayer is the name prefix of block i.
func dimambaLayer(i int) string { return fmt.Sprintf("%slayers.%d.", dimambaBody, i) }

// DInner is Mamba's inner width expand·D.
func (c Config) DInner() int { return c.Expand * c.Hidden }

func (c Config) validateDiMamba() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"cond_dim", c.Cond}, {"d_state", c.DState}, {"d_conv", c.DConv}, {"expand", c.Expand}, {"dt_rank", c.DtRank}} {
		if f.v <= 0 {
			return fmt.Errorf("model config: %s must be positive for DiMamba, got %d", f.name, f.v)
		}
	}
	return c.validateDiffusion()
}

// dimambaSpecs lists DiMamba's parameters in the order of the reference
// module's parameters() (the EMA list of a training checkpoint): sigma_map,
// the embedding, per layer the forward Mamba (A_log, D, then in_proj, conv1d,
// x_proj, dt_proj, out_proj), the reverse Mamba without its tied projections,
// norm and adaLN_modulation; then adaLN_modulation_final, norm_f and lm_head.
func (c Config) dimambaSpecs() []Spec {
	D, C, V, Din, N, K, R := c.Hidden, c.Cond, c.Vocab, c.DInner(), c.DState, c.DConv, c.DtRank
	specs := []Spec{
		{"sigma_map.mlp.0.weight", []int{C, timestepFreqDim}, InitFanIn, timestepFreqDim},
		{"sigma_map.mlp.0.bias", []int{C}, InitFanIn, timestepFreqDim},
		{"sigma_map.mlp.2.weight", []int{C, C}, InitFanIn, C},
		{"sigma_map.mlp.2.bias", []int{C}, InitFanIn, C},
		{dimambaEmb, []int{V, D}, InitNormal, D},
	}
	mamba := func(p string, tied bool) []Spec {
		// A module's own parameters come before its submodules' in parameters():
		// A_log and D first.
		s := []Spec{{p + "A_log", []int{Din, N}, InitALog, N}, {p + "D", []int{Din}, InitOne, Din}}
		if !tied {
			s = append(s, Spec{p + "in_proj.weight", []int{2 * Din, D}, InitFanIn, D})
		}
		s = append(s,
			Spec{p + "conv1d.weight", []int{Din, 1, K}, InitFanIn, K},
			Spec{p + "conv1d.bias", []int{Din}, InitFanIn, K},
			Spec{p + "x_proj.weight", []int{R + 2*N, Din}, InitFanIn, Din},
			Spec{p + "dt_proj.weight", []int{Din, R}, InitFanIn, R}, // U(±dt_rank^-0.5): dt_init "random"
			Spec{p + "dt_proj.bias", []int{Din}, InitDtBias, R})
		if !tied {
			s = append(s, Spec{p + "out_proj.weight", []int{D, Din}, InitResidualOut, Din})
		}
		return s
	}
	for i := 0; i < c.Blocks; i++ {
		p := dimambaLayer(i)
		specs = append(specs, mamba(p+"mixer.mamba_fwd.", false)...)
		specs = append(specs, mamba(p+"mixer.mamba_rev.", true)...)
		specs = append(specs,
			Spec{p + "norm.weight", []int{D}, InitOne, D},
			Spec{p + "adaLN_modulation.weight", []int{3 * D, C}, InitZero, C},
			Spec{p + "adaLN_modulation.bias", []int{3 * D}, InitZero, C})
	}
	return append(specs,
		Spec{dimambaBody + "adaLN_modulation_final.weight", []int{2 * D, C}, InitZero, C},
		Spec{dimambaBody + "adaLN_modulation_final.bias", []int{2 * D}, InitZero, C},
		Spec{dimambaBody + "norm_f.weight", []int{D}, InitOne, D},
		Spec{dimambaHead, []int{V, D}, InitFanIn, D})
}

// Tied is a state-dict entry that is another parameter under a second name.
type Tied struct{ Name, Source string }

// TiedParams lists the state-dict names that are not parameters of their own:
// DiMamba's reverse in_proj and out_proj, tied to the forward Mamba's.
func (c Config) TiedParams() []Tied {
	if c.Arch != DiMamba {
		return nil
	}
	var out []Tied
	for i := 0; i < c.Blocks; i++ {
		p := dimambaLayer(i) + "mixer.mamba_"
		for _, proj := range []string{"in_proj.weight", "out_proj.weight"} {
			out = append(out, Tied{Name: p + "rev." + proj, Source: p + "fwd." + proj})
		}
	}
	return out
}

// rmsNormEps is the reference's norm_epsilon.
const rmsNormEps = 1e-5

// rmsNorm is mamba_ssm's RMSNorm: x / sqrt(mean(x²) + eps) · weight (no bias).
func rmsNorm(x, weight *Node) *Node {
	ms := ReduceAndKeep(Square(x), ReduceMean, -1)
	return Mul(Mul(x, Reciprocal(Sqrt(AddScalar(ms, rmsNormEps)))), ExpandLeftToRank(weight, x.Rank()))
}

func forwardDiMamba(cfg Config, p Params, indices, sigma *Node, mode layers.Mode, drop *Dropout) *Node {
	x := layers.Embed(p[dimambaEmb], indices) // [B, L, D]
	c := timestepCondition(mode, p, sigma, x.DType())
	D := cfg.Hidden
	for i := 0; i < cfg.Blocks; i++ {
		l := dimambaLayer(i)
		mod := layers.Linear(mode, c, p[l+"adaLN_modulation.weight"], p[l+"adaLN_modulation.bias"]) // [B, 3D]
		chunk := func(k int) *Node { return Slice(mod, AxisRange(), AxisRange(k*D, (k+1)*D)) }
		h := layers.Modulate(mode, rmsNorm(x, p[l+"norm.weight"]), chunk(0), chunk(1))
		m := l + "mixer.mamba_"
		mixed := Add(mambaLayer(mode, cfg, p, m+"fwd.", m+"fwd.", h, false), mambaLayer(mode, cfg, p, m+"rev.", m+"fwd.", h, true))
		x = layers.Gated(mode, x, chunk(2), drop.Apply(mixed))
	}
	mod := layers.Linear(mode, c, p[dimambaBody+"adaLN_modulation_final.weight"], p[dimambaBody+"adaLN_modulation_final.bias"]) // [B, 2D]
	shift := Slice(mod, AxisRange(), AxisRange(0, D))
	scale := Slice(mod, AxisRange(), AxisRange(D, 2*D))
	x = layers.Modulate(mode, rmsNorm(x, p[dimambaBody+"norm_f.weight"]), shift, scale)
	return layers.Linear(mode, x, p[dimambaHead], nil)
}

// timestepCondition is the DiT's and DiMamba's c = SiLU(W2·SiLU(W1·emb(σ) + b1) + b2)
// [B, C]: the TimestepEmbedder (sigma_map), whose features are computed in
// float32 as torch does and whose weights autocast leaves alone, then the
// outer SiLU of DIT.forward / DiMamba.forward; cast to dt.
func timestepCondition(mode layers.Mode, p Params, sigma *Node, dt dtypes.DType) *Node {
	e := ConvertDType(timestepEmbedding(sigma), p["sigma_map.mlp.0.weight"].DType())
	h := layers.Linear(mode, silu(layers.Linear(mode, e, p["sigma_map.mlp.0.weight"], p["sigma_map.mlp.0.bias"])),
		p["sigma_map.mlp.2.weight"], p["sigma_map.mlp.2.bias"])
	return ConvertDType(silu(h), dt)
}

// mambaLayer is one direction of the bidirectional mixer: Mamba(h) with the
// parameters under own (conv1d, x_proj, dt_proj, A_log, D) and proj (in_proj,
// out_proj), or, with reverse, flip(Mamba(flip(h))).
func mambaLayer(mode layers.Mode, cfg Config, p Params, own, proj string, h *Node, reverse bool) *Node {
	Din, N, R := cfg.DInner(), cfg.DState, cfg.DtRank
	xz := layers.Linear(mode, h, p[proj+"in_proj.weight"], nil) // [B, L, 2Din]
	x := Slice(xz, AxisRange(), AxisRange(), AxisRange(0, Din))
	z := Slice(xz, AxisRange(), AxisRange(), AxisRange(Din, 2*Din))
	x = silu(depthwiseConv(x, p[own+"conv1d.weight"], p[own+"conv1d.bias"], reverse))

	xdbl := layers.Linear(mode, x, p[own+"x_proj.weight"], nil) // [B, L, R+2N]
	dt := Slice(xdbl, AxisRange(), AxisRange(), AxisRange(0, R))
	bIn := Slice(xdbl, AxisRange(), AxisRange(), AxisRange(R, R+N))
	cOut := Slice(xdbl, AxisRange(), AxisRange(), AxisRange(R+N, R+2*N))
	delta := Softplus(layers.Linear(mode, dt, p[own+"dt_proj.weight"], p[own+"dt_proj.bias"])) // [B, L, Din]; torch's threshold 20 is the same to float32

	// The scan runs in float32 whatever the matmul precision (the reference's
	// selective_scan_fn computes in fp32 under autocast).
	f32 := func(n *Node) *Node { return ConvertDType(n, dtypes.Float32) }
	A := Neg(Exp(f32(p[own+"A_log"])))
	y := selectiveScan(f32(delta), A, f32(bIn), f32(cOut), f32(x), reverse)
	y = Add(y, Mul(f32(x), ExpandLeftToRank(f32(p[own+"D"]), y.Rank())))
	y = ConvertDType(Mul(y, f32(silu(z))), h.DType())
	return layers.Linear(mode, y, p[proj+"out_proj.weight"], nil)
}

// depthwiseConv is nn.Conv1d(Din, Din, K, groups=Din, padding=K−1) truncated to
// L: y_t = bias + Σ_k w[k]·x_{t−(K−1)+k}, zeros before the start. With reverse it
// is the same convolution seen through a flip: y_t = bias + Σ_k w[k]·x_{t+(K−1)−k}.
// x [B, L, Din]; weight [Din, 1, K].
func depthwiseConv(x, weight, bias *Node, reverse bool) *Node {
	dims := x.Shape().Dimensions
	B, L, Din, K := dims[0], dims[1], dims[2], weight.Shape().Dimensions[2]
	w := Reshape(weight, Din, K)
	zeros := Zeros(x.Graph(), shapes.Make(x.DType(), B, K-1, Din))
	var padded *Node
	if reverse {
		padded = Concatenate([]*Node{x, zeros}, 1)
	} else {
		padded = Concatenate([]*Node{zeros, x}, 1)
	}
	y := Reshape(bias, 1, 1, Din)
	for k := 0; k < K; k++ {
		start := k
		if reverse {
			start = K - 1 - k
		}
		tap := Reshape(Slice(w, AxisRange(), AxisElem(k)), 1, 1, Din)
		y = Add(y, Mul(Slice(padded, AxisRange(), AxisRange(start, start+L)), tap))
	}
	return y
}
