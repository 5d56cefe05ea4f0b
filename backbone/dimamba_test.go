package backbone

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/safetensors"

	"github.com/mdlm-go/mdlm/internal/layers"
)

// DiMambaFixturesEnv overrides the DiMamba fixtures folder.
const DiMambaFixturesEnv = "MDLM_DIMAMBA_FIXTURES"

// dimambaFixture is a fixture folder's config.json (FORMAT.md of fixtures/dimamba).
type dimambaFixture struct {
	Batch     int      `json:"batch"`
	Length    int      `json:"length"`
	Hidden    int      `json:"hidden_size"`
	Cond      int      `json:"cond_dim"`
	Blocks    int      `json:"n_blocks"`
	Vocab     int      `json:"vocab_size"`
	DState    int      `json:"d_state"`
	DConv     int      `json:"d_conv"`
	Expand    int      `json:"expand"`
	DtRank    int      `json:"dt_rank"`
	Tied      []string `json:"state_dict_names_not_parameters"`
	NumParams int      `json:"n_parameters"`
	TieEmbeds bool     `json:"tie_word_embeddings"`
	TembStrat string   `json:"temb_strategy"`
}

func readDiMambaFixture(t *testing.T, dir string) (dimambaFixture, Config) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx dimambaFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("%s/config.json: %v", dir, err)
	}
	if fx.TembStrat != "adaln" || fx.TieEmbeds {
		t.Fatalf("%s: temb_strategy %q, tie_word_embeddings %v: only the reference's adaln, untied configuration is built", dir, fx.TembStrat, fx.TieEmbeds)
	}
	cfg := Config{Arch: DiMamba, Vocab: fx.Vocab, Hidden: fx.Hidden, Blocks: fx.Blocks, Cond: fx.Cond, Length: fx.Length,
		MaskIndex: fx.Vocab - 1, DState: fx.DState, DConv: fx.DConv, Expand: fx.Expand, DtRank: fx.DtRank}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return fx, cfg
}

// TestDiMambaReference checks logits and the gradient of sum(logits·R) for every
// parameter against the PyTorch reference, for every fixture folder, with the
// scan in one chunk and in several (with and without gradient checkpointing).
func TestDiMambaReference(t *testing.T) {
	for _, dir := range reffix.Subdirs(t, DiMambaFixturesEnv, "dimamba") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			fx, cfg := readDiMambaFixture(t, dir)
			if got := cfg.NumParams(); got != fx.NumParams {
				t.Errorf("parameters: %d, reference %d", got, fx.NumParams)
			}
			var tied []string
			for _, tp := range cfg.TiedParams() {
				tied = append(tied, tp.Name)
			}
			if !slices.Equal(tied, fx.Tied) {
				t.Errorf("tied names %v, reference %v", tied, fx.Tied)
			}
			wf, err := safetensors.OpenMmap(filepath.Join(dir, "dimamba.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer wf.Close()
			inferred, err := InferConfig(wf)
			if err != nil {
				t.Fatal(err)
			}
			inferred.Length = cfg.Length
			if inferred != cfg.withDropout(0.1) {
				t.Errorf("InferConfig: %+v, want %+v", inferred, cfg.withDropout(0.1))
			}
			w, err := LoadWeights(wf, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ef, err := safetensors.OpenMmap(filepath.Join(dir, "expected.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			idx, _ := reffix.Int64(t, ef, "indices")
			sigma, _ := reffix.Float32(t, ef, "sigma")
			wantLogits, _ := reffix.Float32(t, ef, "logits")
			R, _ := reffix.Float32(t, ef, "R")

			for _, sc := range []struct {
				name       string
				chunk      int
				checkpoint bool
			}{{"one-chunk", 1 << 20, false}, {"chunk5", 5, true}, {"chunk8-nockpt", 8, false}, {"chunk1", 1, false}, {"chunk64-ckpt", 64, true}} {
				t.Run(sc.name, func(t *testing.T) {
					defer func() { layers.ScanOverride = nil }()
					layers.ScanOverride = &layers.ScanCut{Chunk: sc.chunk, Checkpoint: sc.checkpoint}
					logits, grads := dimambaLogitsAndGrads(t, w, reffix.Int32s(idx), sigma, R, fx.Batch, fx.Length)
					reffix.Compare(t, "logits", logits, wantLogits, 1e-4*reffix.MaxAbs(wantLogits), nil)
					for i, s := range cfg.Specs() {
						want, _ := reffix.Float32(t, ef, "grad."+s.Name)
						reffix.Compare(t, "grad."+s.Name, grads[i], want, 1e-3*max(reffix.MaxAbs(want), 1e-6), nil)
					}
				})
			}
		})
	}
}

func (c Config) withDropout(d float64) Config { c.Dropout = d; return c }

// dimambaLogitsAndGrads evaluates the backbone and the gradient of sum(logits·R).
func dimambaLogitsAndGrads(t *testing.T, w *Weights, idx []int32, sigma, R []float32, B, L int) ([]float32, [][]float32) {
	t.Helper()
	cfg := w.Config
	n := len(cfg.Specs())
	exec, err := NewExec(testBackend(t), func(g *Graph, in []*Node) []*Node {
		logits := Forward(cfg, ParamsFromNodes(cfg, in[:n]), nil, in[n], in[n+1], layers.Inference, nil)
		loss := ReduceAllSum(Mul(logits, in[n+2]))
		return append([]*Node{logits}, Gradient(loss, in[:n]...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	var args []any
	for _, x := range w.Tensors() {
		args = append(args, x)
	}
	V := cfg.Vocab
	args = append(args, tensors.FromFlatDataAndDimensions(idx, B, L), tensors.FromFlatDataAndDimensions(sigma, B),
		tensors.FromFlatDataAndDimensions(R, B, L, V))
	out, err := exec.Call(args...)
	if err != nil {
		t.Fatal(err)
	}
	grads := make([][]float32, n)
	for i := range grads {
		grads[i] = tensors.MustCopyFlatData[float32](out[1+i])
	}
	return tensors.MustCopyFlatData[float32](out[0]), grads
}
