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
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/stagetest"
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
	if m.Type != artifact.MetricsType || m.Inputs["model"] == "" || m.Inputs["data"] == "" || m.Stage != "eval" {
		t.Errorf("manifest %+v", m)
	}
	var res evaluate.Perplexity
	raw, _ := os.ReadFile(filepath.Join(out, evaluate.MetricsJSON))
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

func block(fill int32) []int32 {
	ids := make([]int32, 16)
	for i := range ids {
		ids[i] = fill
	}
	return ids
}

// TestHostileEvalData guards issue 19, defect 10: an empty split and token ids
// beyond the vocabulary (in a well-formed, re-hashed artifact) are refused when
// the data is opened, naming the file and what is wrong, and nothing is published.
func TestHostileEvalData(t *testing.T) {
	ck := checkpointFixture(t, 259)
	bad := block(65)
	bad[5] = 300
	cases := []struct {
		name   string
		splits map[string][][]int32
		want   []string
	}{
		{"empty split", map[string][][]int32{"valid": nil}, []string{"valid.arrow", `split "valid" has no blocks`}},
		{"id beyond vocabulary", map[string][][]int32{"valid": {block(65), bad}}, []string{"valid.arrow", "block 1, position 5", "token id 300 is outside the vocabulary [0, 259)"}},
		{"negative id", map[string][][]int32{"valid": {block(-2)}}, []string{"block 0, position 0", "token id -2"}},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "m")
		_, err := stagetest.Run(context.Background(), Def, &Options{Checkpoint: ck, Data: stagetest.PackedBlocks(t, c.splits), Out: out, Split: "valid", Batch: 4, Seed: 1, T: -1})
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want it to mention %q", c.name, err, w)
			}
		}
		if _, serr := os.Stat(out); !os.IsNotExist(serr) {
			t.Errorf("%s: published", c.name)
		}
	}
}

// TestHostileEvalNonFinite: a perplexity JSON cannot carry fails the stage with
// the metric named, instead of "json: unsupported value: +Inf".
func TestHostileEvalNonFinite(t *testing.T) {
	cases := []struct {
		res  evaluate.Perplexity
		want string
	}{
		{evaluate.Perplexity{NLL: 2, BPD: 3, PPL: 7, Tokens: 10, UnigramPPL: 5}, ""},
		{evaluate.Perplexity{NLL: 800, BPD: 1154, PPL: math.Inf(1), Tokens: 10, UnigramPPL: 5}, "ppl is +Inf"},
		{evaluate.Perplexity{NLL: math.NaN(), BPD: math.NaN(), PPL: math.NaN(), Tokens: 10}, "nll is NaN"},
	}
	for _, c := range cases {
		err := checkFinite(c.res)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: err = %v, want %q", c.res, err, c.want)
		}
	}
}
