package eval

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/train"
)

func checkpointFixture(t *testing.T, vocab int) string {
	t.Helper()
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: vocab, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: 16, MaskIndex: vocab - 1}
	w, err := backbone.NewWeights(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ck")
	if _, err := checkpoint.Save(dir, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "bytes"}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The stage publishes metrics/v1 naming both inputs by digest; a perplexity
// of a random model is finite and near the vocabulary size or below.
func TestEvalStage(t *testing.T) {
	data, ck := stagetest.PackedArtifact(t), checkpointFixture(t, 259)
	out := filepath.Join(t.TempDir(), "m")
	m, err := stagetest.Run(context.Background(), Def, &Options{Checkpoint: ck, Data: data, Out: out, Split: "valid", Batch: 4, Seed: 1, T: -1, MaxBlocks: 8})
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != train.MetricsType || m.Inputs["model"] == "" || m.Inputs["data"] == "" || m.Stage != "eval" {
		t.Errorf("manifest %+v", m)
	}
	var res train.Perplexity
	raw, _ := os.ReadFile(filepath.Join(out, train.MetricsJSON))
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 8 || res.Split != "valid" || math.IsNaN(res.PPL) || res.PPL <= 1 || res.PPL > 2*259 {
		t.Errorf("result %+v", res)
	}
}

func TestEvalRejectsBadInputs(t *testing.T) {
	data := stagetest.PackedArtifact(t)
	cases := []struct {
		opts Options
		want string
	}{
		{Options{Checkpoint: checkpointFixture(t, 300), Data: data}, "vocabulary 259, the checkpoint 300"},
		{Options{Checkpoint: checkpointFixture(t, 259), Data: stagetest.TextArtifact(t, 10, "a")}, `--data: artifact`},
		{Options{Checkpoint: data, Data: data}, "--checkpoint"},
		{Options{Checkpoint: checkpointFixture(t, 259), Data: data, Split: "test"}, "--split test"},
	}
	for _, c := range cases {
		c.opts.Out = filepath.Join(t.TempDir(), "m")
		if c.opts.Split == "" {
			c.opts.Split = "valid"
		}
		c.opts.Batch, c.opts.T = 4, -1
		_, err := stagetest.Run(context.Background(), Def, &c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.opts, err, c.want)
		}
		if _, err := os.Stat(c.opts.Out); err == nil {
			t.Errorf("%+v: published", c.opts)
		}
	}
}
