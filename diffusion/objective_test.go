package diffusion

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/internal/reffix"
)

// The log move chances at the ends of the schedule, against the values of
// noise_schedule.py's formulas computed by hand (float64): loglinear's
// f_T = log1p(−ε), f_0 = log1p(−e^{−ε}), whose −f_0 is the importance-sampling
// weight 6.908255 (the values mdlm.md §1.2 quotes), and linear's with
// σ_min 1e-3, σ_max 7. Other schedules have none.
func TestLogMoveChanceBounds(t *testing.T) {
	cases := []struct {
		s      Schedule
		fT, f0 float64
		err    string
	}{
		{LogLinear{Eps: LogLinearEps}, -0.0010005003335835337, -6.908255237315501, ""},
		{Linear{SigmaMin: 1e-3, SigmaMax: 7}, -0.0009122979828390684, -6.908255237315501, ""},
		{Cosine{Eps: 1e-3}, 0, 0, "cosine has no sigma_min"},
		{Geometric{SigmaMin: 1e-4, SigmaMax: 20}, 0, 0, "geometric has no sigma_min"},
		{Linear{SigmaMin: 0, SigmaMax: 7}, 0, 0, "0 < sigma_min"},
	}
	for _, c := range cases {
		fT, f0, err := LogMoveChanceBounds(c.s)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.s.Name(), err, c.err)
			}
			continue
		}
		if err != nil || math.Abs(fT-c.fT) > 1e-15 || math.Abs(f0-c.f0) > 1e-13 {
			t.Errorf("%s: f_T %v f_0 %v (err %v), want %v %v", c.s.Name(), fT, f0, err, c.fT, c.f0)
		}
	}
	m := Model{Schedule: LogLinear{Eps: LogLinearEps}}
	if w, err := m.ISWeight(); err != nil || math.Abs(w-6.908255) > 1e-6 {
		t.Errorf("ISWeight = %v, %v; want 6.908255", w, err)
	}
}

// importance_sampling_transformation, against hand-computed values:
// loglinear t' = exp(t·f_T + (1−t)·f_0)/(1 − ε) (the move chance over 1 − ε),
// linear t' = (σ̃ − σ_min)/(σ_max − σ_min); both map 1 to 1.
func TestImportanceSamplingTransform(t *testing.T) {
	ll, lin := LogLinear{Eps: LogLinearEps}, Linear{SigmaMin: 1e-3, SigmaMax: 7}
	cases := []struct {
		s       Schedule
		t, want float64
	}{
		{ll, 0.001, 0.0010074353023401426},
		{ll, 0.25, 0.005625524714094888},
		{ll, 0.5, 0.03163069185604814},
		{ll, 1, 1},
		{lin, 0.001, 9.908193287066657e-07},
		{lin, 0.5, 0.0044449955005054255},
		{lin, 1, 1.0000000000000067},
	}
	for _, c := range cases {
		got, err := ImportanceSamplingTransform(c.s, c.t)
		if err != nil || math.Abs(got-c.want) > 1e-12*math.Max(1, c.want) {
			t.Errorf("%s IS(%v) = %v (err %v), want %v", c.s.Name(), c.t, got, err, c.want)
		}
	}
	if _, err := ImportanceSamplingTransform(CosineSqr{Eps: 1e-3}, 0.5); err == nil {
		t.Error("cosinesqr has no transformation, want an error")
	}
}

// _sample_t with each switch, against hand-computed times: the antithetic
// example of mdlm.md §2.5, independent draws, another floor, importance
// sampling of the floored time and the grid of T applied after it.
func TestSampleTimesSwitches(t *testing.T) {
	ll := LogLinear{Eps: LogLinearEps}
	base := Model{Schedule: ll, Antithetic: true, SamplingEps: 1e-3}
	isT := 0.0010074353023401426 // IS(1e-3)
	cases := []struct {
		name   string
		mutate func(*Model)
		u      []float32
		want   []float64
	}{
		{"antithetic", func(*Model) {}, []float32{0.2, 0.6, 0.1, 0.9}, []float64{0.05095, 0.4006, 0.525475, 0.975025}},
		{"independent", func(m *Model) { m.Antithetic = false }, []float32{0, 0.5}, []float64{1e-3, 0.5005}},
		{"floor 0.01", func(m *Model) { m.Antithetic, m.SamplingEps = false, 0.01 }, []float32{0, 0.5}, []float64{0.01, 0.505}},
		{"importance sampling", func(m *Model) { m.Antithetic, m.ImportanceSampling = false, true }, []float32{0, 1},
			[]float64{isT, 1}},
		{"importance sampling, T 1000", func(m *Model) { m.Antithetic, m.ImportanceSampling, m.T = false, true, 1000 }, []float32{0, 0.5},
			[]float64{0.002, math.Floor(0.03163069185604814*1000)/1000 + 0.001}},
	}
	for _, c := range cases {
		m := base
		c.mutate(&m)
		got := m.SampleTimes(append([]float32(nil), c.u...))
		for i, w := range c.want {
			if math.Abs(float64(got[i])-w) > 2e-6*math.Max(1, w) {
				t.Errorf("%s: t[%d] = %v, want %v", c.name, i, got[i], w)
			}
		}
	}
}

// StratumTimes puts draw j of K of every row in the stratum [j/K, (j+1)/K)
// of u when antithetic, and leaves u as drawn otherwise.
func TestStratumTimes(t *testing.T) {
	m := Model{Schedule: LogLinear{Eps: LogLinearEps}, Antithetic: true, SamplingEps: 1e-3}
	u := []float32{0, 0.5, 0.999}
	const K = 4
	for j := 0; j < K; j++ {
		for i, x := range m.StratumTimes(u, j, K) {
			want := (1-1e-3)*(float64(u[i])+float64(j))/K + 1e-3
			if math.Abs(float64(x)-want) > 1e-6 {
				t.Errorf("draw %d row %d: t = %v, want %v", j, i, x, want)
			}
		}
	}
	m.Antithetic = false
	for i, x := range m.StratumTimes(u, 3, K) {
		if want := (1-1e-3)*float64(u[i]) + 1e-3; math.Abs(float64(x)-want) > 1e-6 {
			t.Errorf("independent row %d: t = %v, want %v", i, x, want)
		}
	}
}

// Under change of variables the mask is drawn with move chance
// exp(f_0 + t·(f_T − f_0)) (hand values at t = 0, 0.5, 1), σ is the
// equivalent −log(1 − move chance), and the masked fraction of many positions
// matches the move chance.
func TestChangeOfVariablesNoise(t *testing.T) {
	m := Model{Backbone: backbone.Config{MaskIndex: 9}, Schedule: LogLinear{Eps: LogLinearEps}, ChangeOfVariables: true}
	ts := []float32{0, 0.5, 1}
	wantMC := []float64{0.000999500166624978, 0.03159906116419209, 0.9989999999999998}
	wantSigma := []float64{0.0009999999999999697, 0.032109084447609064, 6.907755278981914}
	const L = 200000
	x0 := make([]int32, len(ts)*L)
	xt, sigma, _ := m.NoiseAt(x0, ts, len(ts), L, rand.New(rand.NewPCG(1, 2)))
	for b := range ts {
		if math.Abs(float64(sigma[b])-wantSigma[b]) > 1e-6*wantSigma[b] {
			t.Errorf("t=%v: σ = %v, want %v", ts[b], sigma[b], wantSigma[b])
		}
		masked := 0
		for _, x := range xt[b*L : (b+1)*L] {
			if x == 9 {
				masked++
			}
		}
		frac, sd := float64(masked)/L, math.Sqrt(wantMC[b]*(1-wantMC[b])/L)
		if math.Abs(frac-wantMC[b]) > 5*sd {
			t.Errorf("t=%v: masked fraction %v, want %v ± %v", ts[b], frac, wantMC[b], 5*sd)
		}
	}
}

// tinyModel is a random DiT small enough for exact loss checks.
func tinyModel(t *testing.T) (backbone.Config, *backbone.Weights) {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 13, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 6, MaskIndex: 12}
	w, err := backbone.NewWeights(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for name, v := range w.Data { // zero-initialised output and adaLN layers get values
		if strings.Contains(name, "adaLN") || strings.HasPrefix(name, "output_layer.linear") {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
	}
	return cfg, w
}

// lossOf runs m.PerTokenLoss on one batch.
func lossOf(t *testing.T, m Model, w *backbone.Weights, x0, xt []int32, tt, sigma, dsigma []float32) []float32 {
	t.Helper()
	B, L := len(tt), len(x0)/len(tt)
	return runLoss(t, m, w, x0, xt, tt, sigma, dsigma, B, L)
}

// The continuous SUBS loss under importance sampling or change of variables
// is −log p_θ(x0)·(−f_0) at masked positions, 0 elsewhere: its ratio to the
// plain loss −log p_θ(x0)·σ'/expm1(σ) is −f_0/(1/t) for loglinear. Change of
// variables conditions a time-conditioned backbone on t, not σ.
func TestImportanceWeightedLoss(t *testing.T) {
	cfg, w := tinyModel(t)
	x0 := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0}
	xt := []int32{12, 2, 12, 4, 5, 12, 12, 12, 9, 10, 12, 0}
	tt := []float32{0.3, 0.8}
	sched := LogLinear{Eps: LogLinearEps}
	sigma, dsigma := SigmaDSigma(sched, tt)
	plain := Model{Backbone: cfg, Param: SUBS, Schedule: sched}
	base := lossOf(t, plain, w, x0, xt, tt, sigma, dsigma)
	for _, sw := range []struct {
		name string
		m    Model
	}{{"importance sampling", Model{Backbone: cfg, Param: SUBS, Schedule: sched, ImportanceSampling: true}},
		{"change of variables", Model{Backbone: cfg, Param: SUBS, Schedule: sched, ChangeOfVariables: true}}} {
		got := lossOf(t, sw.m, w, x0, xt, tt, sigma, dsigma)
		for i := range got {
			r := i / 6
			if xt[i] != 12 {
				if got[i] != 0 {
					t.Errorf("%s: unmasked position %d has loss %v", sw.name, i, got[i])
				}
				continue
			}
			want := float64(base[i]) * 6.908255237315501 * float64(tt[r]) // base = −log p / t
			if math.Abs(float64(got[i])-want) > 1e-4*math.Abs(want) {
				t.Errorf("%s: position %d loss %v, want %v", sw.name, i, got[i], want)
			}
		}
	}
	// Time-conditioned: change of variables feeds t where importance sampling feeds σ.
	cov := Model{Backbone: cfg, Param: SUBS, Schedule: sched, ChangeOfVariables: true, TimeConditioning: true}
	is := Model{Backbone: cfg, Param: SUBS, Schedule: sched, ImportanceSampling: true, TimeConditioning: true}
	a := lossOf(t, cov, w, x0, xt, tt, sigma, dsigma)
	b := lossOf(t, is, w, x0, xt, tt, tt, dsigma) // σ := t
	c := lossOf(t, is, w, x0, xt, tt, sigma, dsigma)
	differs := false
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5*math.Max(1, math.Abs(float64(a[i]))) {
			t.Errorf("position %d: change of variables %v, conditioned on t %v", i, a[i], b[i])
		}
		differs = differs || math.Abs(float64(a[i]-c[i])) > 1e-4
	}
	if !differs {
		t.Error("change of variables gives the loss of σ conditioning: the conditioning on t is not exercised")
	}
}

// With subs masking, D3PM's loss (diffusion term and reconstruction) is the
// literal _d3pm_loss of D3PMLogProbs with the [MASK] logit pushed by −1e6,
// and differs from the plain D3PM loss.
func TestSubsMaskingD3PMLoss(t *testing.T) {
	cfg, w := tinyModel(t)
	b, _ := backend.Shared()
	x0 := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0}
	xt := []int32{12, 2, 12, 4, 5, 12, 12, 12, 9, 10, 12, 0}
	tt := Discretize([]float32{0.3, 0.8}, 1000)
	sched := LogLinear{Eps: LogLinearEps}
	sigma, dsigma := SigmaDSigma(sched, tt)
	m := Model{Backbone: cfg, Param: D3PM, T: 1000, Schedule: sched, SubsMasking: true}
	got := lossOf(t, m, w, x0, xt, tt, sigma, dsigma)
	n := len(cfg.Specs())
	exec := MustNewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(cfg, in[:n])
		x0n, xtn, tn := in[n], in[n+1], in[n+2]
		zero := ZerosLike(tn)
		lp := D3PMLogProbs(backbone.Forward(cfg, p, w.RotaryInvFreqOrDefault(), xtn, zero, layers.Inference, nil), cfg.MaskIndex, true)
		maskCol := Reshape(Slice(lp, AxisRange(), AxisRange(), AxisElem(cfg.MaskIndex)), 2, 6)
		diff := D3PMLoss(Pick(lp, x0n), maskCol, xtn, tn, 1000, cfg.MaskIndex)
		clean := D3PMLogProbs(backbone.Forward(cfg, p, w.RotaryInvFreqOrDefault(), x0n, zero, layers.Inference, nil), cfg.MaskIndex, true)
		return Sub(diff, Pick(clean, x0n))
	})
	args := []any{}
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(x0, 2, 6), tensors.FromFlatDataAndDimensions(xt, 2, 6), tensors.FromFlatDataAndDimensions(tt, 2))
	want := tensors.MustCopyFlatData[float32](exec.MustCall(args...)[0])
	m.SubsMasking = false
	plain := lossOf(t, m, w, x0, xt, tt, sigma, dsigma)
	differs := false
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("position %d: subs-masked D3PM loss %v, literal %v", i, got[i], want[i])
		}
		differs = differs || math.Abs(float64(got[i]-plain[i])) > 1e-3
	}
	if !differs {
		t.Error("subs masking does not change the D3PM loss: the switch is not exercised")
	}
}

// Validate refuses the combinations diffusion.py: _validate_configuration
// asserts against, and switches the schedule cannot serve.
func TestValidateObjective(t *testing.T) {
	cfg, _ := tinyModel(t)
	ll := LogLinear{Eps: LogLinearEps}
	cases := []struct {
		name string
		m    Model
		want string
	}{
		{"both", Model{Backbone: cfg, Param: SUBS, Schedule: ll, ImportanceSampling: true, ChangeOfVariables: true}, "cannot both"},
		{"sedd is", Model{Backbone: cfg, Param: SEDD, TimeConditioning: true, Schedule: ll, ImportanceSampling: true}, "sedd"},
		{"subs masking on subs", Model{Backbone: cfg, Param: SUBS, Schedule: ll, SubsMasking: true}, "subs_masking"},
		{"is cosine", Model{Backbone: cfg, Param: SUBS, Schedule: Cosine{Eps: 1e-3}, ImportanceSampling: true}, "cosine"},
		{"eps 1", Model{Backbone: cfg, Param: SUBS, Schedule: ll, SamplingEps: 1}, "sampling_eps"},
		{"ok", Model{Backbone: cfg, Param: D3PM, T: 10, Schedule: ll, SubsMasking: true, ChangeOfVariables: true}, ""},
	}
	for _, c := range cases {
		err := c.m.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// A checkpoint's manifest records its objective; reading it back keeps
// defaults for absent fields and refuses unknown or invalid ones.
func TestObjectiveFromParams(t *testing.T) {
	cases := []struct {
		params map[string]any
		want   Objective
		err    string
	}{
		{map[string]any{"step": 3}, DefaultObjective(), ""},
		{map[string]any{"objective": map[string]any{"importance_sampling": true}},
			Objective{Antithetic: true, SamplingEps: 1e-3, ImportanceSampling: true}, ""},
		{map[string]any{"objective": map[string]any{"antithetic": false, "sampling_eps": 0.01, "random_crop": true}},
			Objective{SamplingEps: 0.01, RandomCrop: true}, ""},
		{map[string]any{"objective": map[string]any{"temperature": 2}}, Objective{}, "unknown field"},
		{map[string]any{"objective": map[string]any{"sampling_eps": 0}}, Objective{}, "sampling_eps"},
		{map[string]any{"objective": "yes"}, Objective{}, "objective"},
	}
	for _, c := range cases {
		got, err := ObjectiveFromParams(c.params)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: err = %v, want %q", c.params, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: %+v (err %v), want %+v", c.params, got, err, c.want)
		}
	}
	if !DefaultObjective().IsDefault() || (Objective{Antithetic: true, SamplingEps: 1e-3, SubsMasking: true}).IsDefault() {
		t.Error("IsDefault")
	}
}

// _maybe_sub_sample: rows of 2L cut to x0[start : start+L] with BOS first;
// for AR, L+1 tokens whose last L are the targets x0[start+1 : start+L+1]
// with the last one EOS, and the targets' mask mask[start : start+L].
func TestCrop(t *testing.T) {
	c := Crop{L: 4, BOS: 90, EOS: 91}
	x0 := []int32{0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17}
	mask := []float32{1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}
	cases := []struct {
		start    int
		ar       bool
		wantX    []int32
		wantMask []float32
	}{
		{0, false, []int32{90, 1, 2, 3, 90, 11, 12, 13}, []float32{1, 1, 1, 1, 1, 1, 1, 1}},
		{3, false, []int32{90, 4, 5, 6, 90, 14, 15, 16}, []float32{1, 1, 1, 0, 1, 1, 1, 1}},
		{3, true, []int32{90, 4, 5, 6, 91, 90, 14, 15, 16, 91}, []float32{1, 1, 1, 1, 0, 1, 1, 1, 1, 1}},
	}
	for _, cs := range cases {
		gx, gm, width, err := c.Apply(x0, mask, 2, cs.start, cs.ar)
		if err != nil || width != len(cs.wantX)/2 {
			t.Fatalf("start %d ar %v: width %d, err %v", cs.start, cs.ar, width, err)
		}
		for i := range cs.wantX {
			if gx[i] != cs.wantX[i] || gm[i] != cs.wantMask[i] {
				t.Errorf("start %d ar %v: rows %v mask %v, want %v %v", cs.start, cs.ar, gx, gm, cs.wantX, cs.wantMask)
				break
			}
		}
	}
	if _, _, _, err := c.Apply(x0, mask, 2, 4, false); err == nil {
		t.Error("start L accepted")
	}
	if _, _, _, err := c.Apply(x0[:12], mask[:12], 2, 0, false); err == nil {
		t.Error("rows shorter than 2L accepted")
	}
	seen := map[int]bool{}
	for k := 0; k < 200; k++ {
		s := CropStart(1, k, 4)
		if s < 0 || s >= 4 || CropStart(1, k, 4) != s {
			t.Fatalf("CropStart(1, %d, 4) = %d: outside [0, 4) or not a function of (seed, k)", k, s)
		}
		seen[s] = true
	}
	if len(seen) != 4 {
		t.Errorf("CropStart drew only %v", seen)
	}
}

// The reference's recorded times (expected_mdlm: mdlm/t, expected_losses:
// subs_T1000/t, both _sample_t with antithetic sampling and the floor 1e-3)
// are SampleT's output: each t_i lies in its stratum
// [(1 − ε)·i/B + ε, (1 − ε)·(i+1)/B + ε), and the uniform u_i recovered from it
// gives back t_i through SampleT to float32 rounding. Independent draws would
// fall in one stratum per row only by chance.
func TestReferenceTimesAreSampleT(t *testing.T) {
	const eps = DefaultSamplingEps
	for _, fx := range reffix.All(t) {
		t.Run(fx.Name, func(t *testing.T) {
			for _, c := range []struct{ file, key string }{{"expected_mdlm.safetensors", "mdlm/t"}, {"expected_losses.safetensors", "subs_T1000/t"}} {
				ts, _ := reffix.Float32(t, fx.Open(t, c.file), c.key)
				B := len(ts)
				u := make([]float32, B)
				for i, x := range ts {
					lo, hi := (1-eps)*float64(i)/float64(B)+eps, (1-eps)*float64(i+1)/float64(B)+eps
					if float64(x) < lo-1e-6 || float64(x) >= hi+1e-6 {
						t.Errorf("%s[%d] = %v outside its antithetic stratum [%v, %v)", c.key, i, x, lo, hi)
					}
					u[i] = float32(math.Min(math.Max(((float64(x)-eps)/(1-eps)-float64(i)/float64(B))*float64(B), 0), math.Nextafter(1, 0)))
				}
				for i, got := range SampleT(u, true, eps) {
					if math.Abs(float64(got-ts[i])) > 4e-7 {
						t.Errorf("%s[%d]: SampleT of the recovered u gives %v, the reference %v", c.key, i, got, ts[i])
					}
				}
			}
		})
	}
}
