package diffusion

import (
	"fmt"
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/internal/testsupport"
	"github.com/mdlm-go/mdlm/safetensors"
)

func TestReferenceNoiseSchedules(t *testing.T) {
	for _, fx := range reffix.All(t) {
		t.Run(fx.Name, func(t *testing.T) {
			f := fx.Open(t, "expected_noise.safetensors")
			ts, _ := reffix.Float32(t, f, "t")
			for _, name := range scheduleNames {
				s, err := NewSchedule(name, DefaultSigmaMin, DefaultSigmaMax)
				if err != nil {
					t.Fatal(err)
				}
				sigma, dsigma := SigmaDSigma(s, ts)
				wantS, _ := reffix.Float32(t, f, name+"/sigma")
				wantD, shape := reffix.Float32(t, f, name+"/dsigma")
				reffix.Compare(t, name+"/sigma", sigma, wantS, reffix.OutputTol(wantS), nil)
				if len(shape) == 0 { // linear: σ' is a scalar
					dsigma = dsigma[:1]
				}
				reffix.Compare(t, name+"/dsigma", dsigma, wantD, reffix.OutputTol(wantD), nil)
			}
		})
	}
}

func TestLogLinearSpecValues(t *testing.T) {
	s := LogLinear{Eps: LogLinearEps}
	cases := []struct{ t, sigma, dsigma, weight float64 }{
		{0.001, 0.000999499, 0.999999, 1000.0},
		{0.5, 0.692147680, 1.996003996, 2.0},
		{0.999, 6.215108223, 499.749875, 1.001001},
	}
	for _, c := range cases {
		sig, ds := s.Sigma(c.t), s.DSigma(c.t)
		w := ds / math.Expm1(sig)
		if math.Abs(sig-c.sigma) > 1e-8 || math.Abs(ds-c.dsigma)/c.dsigma > 1e-8 || math.Abs(w-c.weight)/c.weight > 1e-6 {
			t.Errorf("t=%g: σ=%.9f σ'=%.9f w=%.7f, want %.9f %.9f %.7f", c.t, sig, ds, w, c.sigma, c.dsigma, c.weight)
		}
	}
	if got := -math.Log(LogLinearEps); math.Abs(s.Sigma(1)-got) > 1e-12 {
		t.Errorf("σ(1) = %g, want −log ε = %g", s.Sigma(1), got)
	}
}

func TestSampleTAntitheticExample(t *testing.T) {
	got := SampleT([]float32{0.2, 0.6, 0.1, 0.9}, true, 1e-3)
	want := []float32{0.05095, 0.4006, 0.525475, 0.975025}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Errorf("t[%d] = %g, want %g", i, got[i], want[i])
		}
	}
	plain := SampleT([]float32{0, 0.5}, false, 1e-3)
	if plain[0] != 1e-3 || math.Abs(float64(plain[1])-0.5005) > 1e-7 {
		t.Errorf("non-antithetic t = %v", plain)
	}
}

func TestDiscretize(t *testing.T) {
	got := Discretize([]float32{0, 0.0005, 0.5, 0.9999}, 1000)
	want := []float32{0.001, 0.001, 0.501, 1.0}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Errorf("Discretize[%d] = %g, want %g", i, got[i], want[i])
		}
	}
}

func TestMask(t *testing.T) {
	x0 := []int32{1, 2, 3, 4}
	u := []float32{0.1, 0.9, 0.5, 0.5}
	sigma := []float32{float32(-math.Log(0.5)), 0} // move chance 0.5, then 0
	got := Mask(x0, u, sigma, 9)
	want := []int32{9, 2, 3, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Mask = %v, want %v", got, want)
			break
		}
	}
}

// lossCase runs one diffusion objective on the fixture's batch.
func runLoss(t *testing.T, m Model, w *backbone.Weights, x0, xt []int32, tt, sigma, dsigma []float32, B, L int) []float32 {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	n := len(m.Backbone.Specs())
	exec, err := NewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(m.Backbone, in[:n])
		return m.PerTokenLoss(p, w.RotaryInvFreqOrDefault(), DiffusionInputs{
			X0: in[n], XT: in[n+1], T: in[n+2], Sigma: in[n+3], DSigma: in[n+4]}, layers.Inference, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	args = append(args,
		tensors.FromFlatDataAndDimensions(x0, B, L), tensors.FromFlatDataAndDimensions(xt, B, L),
		tensors.FromFlatDataAndDimensions(tt, B), tensors.FromFlatDataAndDimensions(sigma, B),
		tensors.FromFlatDataAndDimensions(dsigma, B))
	out, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func mean(v []float32) float32 {
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return float32(s / float64(len(v)))
}

func TestReferenceLosses(t *testing.T) {
	for _, fx := range reffix.All(t) {
		t.Run(fx.Name, func(t *testing.T) {
			c := fx.Config
			B, L := c.Batch, c.Length
			bcfg, w := testsupport.FixtureDiT(t, fx)
			sched, err := NewSchedule(c.Noise, DefaultSigmaMin, DefaultSigmaMax)
			if err != nil {
				t.Fatal(err)
			}
			mdlm := fx.Open(t, "expected_mdlm.safetensors")
			losses := fx.Open(t, "expected_losses.safetensors")
			x0, _ := reffix.Int64(t, mdlm, "x0")

			check := func(section string, f *safetensors.File, m Model, tt []float32, xt []int64) {
				sigma, dsigma := SigmaDSigma(m.Schedule, tt)
				got := runLoss(t, m, w, reffix.Int32s(x0), reffix.Int32s(xt), tt, sigma, dsigma, B, L)
				want, _ := reffix.Float32(t, f, section+"/loss_per_token")
				reffix.Compare(t, section+"/loss_per_token", got, want, reffix.OutputTol(want), nil)
				wantMean, _ := reffix.Float32(t, f, section+"/token_nll")
				reffix.Compare(t, section+"/token_nll", []float32{mean(got)}, wantMean, reffix.OutputTol(wantMean), nil)
			}

			// MDLM, continuous time: also check σ(t), σ'(t) against the recorded ones.
			tm, _ := reffix.Float32(t, mdlm, "mdlm/t")
			sigma, dsigma := SigmaDSigma(sched, tm)
			wantSigma, _ := reffix.Float32(t, mdlm, "mdlm/sigma")
			wantDSigma, _ := reffix.Float32(t, mdlm, "mdlm/dsigma")
			reffix.Compare(t, "mdlm/sigma", sigma, wantSigma, reffix.OutputTol(wantSigma), nil)
			reffix.Compare(t, "mdlm/dsigma", dsigma, wantDSigma, reffix.OutputTol(wantDSigma), nil)
			xt, _ := reffix.Int64(t, mdlm, "mdlm/xt")
			checkSUBSLogProbs(t, w, mdlm, reffix.Int32s(xt), B, L)
			base := Model{Backbone: bcfg, Param: SUBS, Schedule: sched}
			check("mdlm", mdlm, base, tm, xt)

			// SUBS with T = 1000: t is recorded before discretisation.
			tRaw, _ := reffix.Float32(t, losses, "subs_T1000/t")
			xt, _ = reffix.Int64(t, losses, "subs_T1000/xt")
			m := base
			m.T = 1000
			check("subs_T1000", losses, m, Discretize(tRaw, 1000), xt)

			// SEDD score entropy, time-conditioned.
			tSEDD, _ := reffix.Float32(t, losses, "sedd/t")
			xt, _ = reffix.Int64(t, losses, "sedd/xt")
			m = base
			m.Param, m.TimeConditioning = SEDD, true
			check("sedd", losses, m, tSEDD, xt)
		})
	}
}

// checkSUBSLogProbs compares the full SUBS log-probabilities: entries above −1e5
// within tolerance, and every −1e6 fill of the reference below −1e5 in ours.
func checkSUBSLogProbs(t *testing.T, w *backbone.Weights, f *safetensors.File, xt []int32, B, L int) {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.Config
	n := len(cfg.Specs())
	exec := MustNewExec(b, func(g *Graph, in []*Node) *Node {
		p := backbone.ParamsFromNodes(cfg, in[:n])
		logits := backbone.Forward(cfg, p, w.RotaryInvFreqOrDefault(), in[n], ZerosLike(in[n+1]), layers.Inference, nil)
		return SUBSLogProbs(logits, in[n], cfg.MaskIndex)
	})
	var args []any
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(xt, B, L), tensors.FromFlatDataAndDimensions(make([]float32, B), B))
	got := tensors.MustCopyFlatData[float32](exec.MustCall(args...)[0])
	want, _ := reffix.Float32(t, f, "mdlm/subs_logprobs")
	finite := func(i int) bool { return want[i] > -1e5 }
	var finiteVals []float32
	fills := 0
	for i, v := range want {
		if finite(i) {
			finiteVals = append(finiteVals, v)
		} else {
			fills++
			if got[i] > -1e5 {
				t.Errorf("subs_logprobs[%d] = %g, the reference's −1e6 fill must stay below −1e5", i, got[i])
			}
		}
	}
	reffix.Compare(t, fmt.Sprintf("mdlm/subs_logprobs (%d entries > -1e5, %d fills)", len(finiteVals), fills),
		got, want, reffix.OutputTol(finiteVals), finite)
}
