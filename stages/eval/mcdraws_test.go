package eval

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

// evalMetrics runs the stage with --mc-draws K and returns metrics.json, raw
// and decoded, and the manifest's params.
func evalMetrics(t *testing.T, data, ck string, K int) ([]byte, evaluate.Perplexity, map[string]any) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m")
	m, err := stagetest.Run(context.Background(), Def, &Options{Checkpoint: ck, Data: data, Out: out, Split: "valid", Batch: 8, Seed: 1, T: -1, MCDraws: K})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, evaluate.MetricsJSON))
	if err != nil {
		t.Fatal(err)
	}
	var res evaluate.Perplexity
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return raw, res, m.Params
}

// --mc-draws K on a fixed checkpoint: the standard error in metrics.json
// shrinks as K grows; K = 1 (the default) writes the reference's metrics.json
// byte for byte as before, with no standard error.
func TestMCDrawsStage(t *testing.T) {
	data, ck := stagetest.PackedArtifact(t), checkpointFixture(t, 259)
	raw1, one, params1 := evalMetrics(t, data, ck, 1)
	raw0, _, _ := evalMetrics(t, data, ck, 0)
	if string(raw1) != string(raw0) || strings.Contains(string(raw1), "stderr") || strings.Contains(string(raw1), "mc_draws") || params1["mc_draws"] != nil {
		t.Errorf("--mc-draws 1 changed the single-draw output:\n%s\n%s", raw1, raw0)
	}
	prev := 0.0
	for i, K := range []int{2, 8, 32} {
		_, res, params := evalMetrics(t, data, ck, K)
		if res.NLLStderr == nil || res.MCDraws != K || params["mc_draws"] != float64(K) && params["mc_draws"] != K {
			t.Fatalf("K=%d: metrics %+v, params %v", K, res, params)
		}
		t.Logf("K=%d: nll %.4f ± %.4f (one draw: %.4f)", K, res.NLL, *res.NLLStderr, one.NLL)
		if i > 0 && *res.NLLStderr >= prev {
			t.Errorf("K=%d: standard error %v, not below the previous %v", K, *res.NLLStderr, prev)
		}
		prev = *res.NLLStderr
	}
	if _, err := stagetest.Run(context.Background(), Def, &Options{Checkpoint: ck, Data: data, Out: filepath.Join(t.TempDir(), "x"), Split: "valid", Batch: 8, T: -1, MCDraws: -2}); err == nil || !strings.Contains(err.Error(), "--mc-draws -2") {
		t.Errorf("--mc-draws -2: err = %v", err)
	}
}
