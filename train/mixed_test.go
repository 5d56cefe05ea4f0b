package train

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/optim"
)

// bf16 mixed precision: on the fixture batch the loss and gradient norm stay within
// bf16 rounding of the float32 reference, and the step updates float32 masters.
func TestBF16MixedPrecisionStep(t *testing.T) {
	b, _ := backend.Shared()
	for _, fx := range reffix.All(t) {
		m, w := fixtureModel(t, fx)
		batch := fixtureBatch(t, fx, m)
		want, _ := reffix.Float32(t, fx.Open(t, "expected_mdlm.safetensors"), "mdlm/token_nll")
		wantNorm, _ := reffix.Float32(t, fx.Open(t, "expected_mdlm.safetensors"), "mdlm/grad_norm")
		s, err := NewStep(b, m, optim.DefaultAdamW(), optim.ConstantWarmup{Peak: 3e-4}, 1, w.RotaryInvFreqOrDefault())
		if err != nil {
			t.Fatal(err)
		}
		s.MixedPrecision = dtypes.BFloat16
		st, _ := NewState(w, 1, dtypes.Float32)
		res, err := s.Run(st, batch)
		if err != nil {
			t.Fatal(err)
		}
		relLoss := math.Abs(float64(res.Loss-want[0])) / float64(want[0])
		relNorm := math.Abs(float64(res.GradNorm-wantNorm[0])) / float64(wantNorm[0])
		t.Logf("bf16: loss %.5f (fp32 reference %.5f, rel %.2e), grad norm %.4f (%.4f, rel %.2e)", res.Loss, want[0], relLoss, res.GradNorm, wantNorm[0], relNorm)
		if relLoss > 2e-2 || relNorm > 5e-2 {
			t.Errorf("bf16 step too far from float32: loss rel %.3g, grad norm rel %.3g", relLoss, relNorm)
		}
		if st.Params[0].DType() != dtypes.Float32 {
			t.Errorf("master weights became %s", st.Params[0].DType())
		}
	}
}
