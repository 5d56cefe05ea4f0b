package backbone

import (
	"math"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/safetensors"
)

// GPT2FixturesEnv names the GPT-2 scorer fixtures folder.
const GPT2FixturesEnv = "MDLM_GPT2_FIXTURES"

// Every GPT-2 fixture: the hub directory loads, and the forward pass gives the
// reference's logits (first 256 of each position), log-sum-exp over the whole
// vocabulary and next-token NLL, within 1e-4 relative.
func TestGPT2ReferenceLogits(t *testing.T) {
	for _, dir := range reffix.Subdirs(t, GPT2FixturesEnv, "gpt2") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			w, err := LoadGPT2(dir)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.OpenMmap(filepath.Join(dir, "expected.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ids, shape := reffix.Int64(t, f, "ids")
			B, L := shape[0], shape[1]
			x := make([]int32, len(ids))
			for i, v := range ids {
				x[i] = int32(v)
			}
			cfg := w.Config
			n := len(cfg.Specs())
			exec, err := NewExec(testBackend(t), func(g *Graph, in []*Node) *Node {
				return GPT2Logits(cfg, ParamsFromNodes(cfg, in[:n]), in[n])
			})
			if err != nil {
				t.Fatal(err)
			}
			args := []any{}
			for _, p := range w.Tensors() {
				args = append(args, p)
			}
			out, err := exec.Call(append(args, tensors.FromFlatDataAndDimensions(x, B, L))...)
			if err != nil {
				t.Fatal(err)
			}
			logits, _ := Float32s(out[0])
			V := cfg.Vocab
			var first, lse, nll []float32
			lseAt := make([]float64, B*L)
			for r := 0; r < B*L; r++ {
				row := logits[r*V : (r+1)*V]
				first = append(first, row[:min(256, V)]...)
				m := math.Inf(-1)
				for _, v := range row {
					m = math.Max(m, float64(v))
				}
				s := 0.0
				for _, v := range row {
					s += math.Exp(float64(v) - m)
				}
				lseAt[r] = m + math.Log(s)
				lse = append(lse, float32(lseAt[r]))
			}
			for b := 0; b < B; b++ {
				for i := 0; i < L-1; i++ {
					r := b*L + i
					nll = append(nll, float32(lseAt[r]-float64(logits[r*V+int(x[r+1])])))
				}
			}
			for _, c := range []struct {
				name string
				got  []float32
			}{{"logits_first256", first}, {"logsumexp", lse}, {"nll", nll}} {
				want, _ := reffix.Float32(t, f, c.name)
				reffix.CompareEach(t, c.name, c.got, want, func(j int) float64 { return 1e-4 * math.Max(1, math.Abs(float64(want[j]))) }, nil)
			}
		})
	}
}

// A GPT-2 checkpoint's tensors are the hub's parameters only: no rotary buffer,
// and a config with its positions. (Bad hub directories: checkpoint's
// TestImportGPT2Repo.)
func TestGPT2CheckpointTensors(t *testing.T) {
	dir := reffix.Subdirs(t, GPT2FixturesEnv, "gpt2")[0]
	w, err := LoadGPT2(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range w.SafetensorsTensors("") {
		if tt.Name == InvFreqName {
			t.Error("a GPT-2 checkpoint carries a rotary buffer")
		}
	}
	if w.Config.NumParams() == 0 || w.Config.Positions == 0 {
		t.Errorf("config %+v", w.Config)
	}
}
