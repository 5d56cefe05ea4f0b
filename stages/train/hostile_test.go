package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/stagetest"
)

func blocks(n int, fill int32) [][]int32 {
	out := make([][]int32, n)
	for i := range out {
		out[i] = make([]int32, 16)
		for j := range out[i] {
			out[i][j] = fill
		}
	}
	return out
}

// TestHostileTrainData guards issue 19, defect 10: an empty train split
// (integer divide by zero) and token ids beyond the vocabulary (a panic in the
// backend's scatter) are refused when the data is opened, naming the file; an
// empty valid split only when the run validates.
func TestHostileTrainData(t *testing.T) {
	beyond := blocks(4, 65)
	beyond[2][7] = 259
	cases := []struct {
		name      string
		splits    map[string][][]int32
		evalEvery int
		want      []string // empty: trains
	}{
		{"empty train split", map[string][][]int32{"train": nil, "valid": blocks(4, 65)}, 3, []string{"train.arrow", `split "train" has no blocks`}},
		{"id beyond vocabulary", map[string][][]int32{"train": beyond}, 3, []string{"train.arrow", "block 2, position 7", "token id 259 is outside the vocabulary [0, 259)"}},
		{"negative id in valid", map[string][][]int32{"train": blocks(4, 65), "valid": blocks(1, -1)}, 3, []string{"valid.arrow", "token id -1"}},
		{"empty valid split, validating", map[string][][]int32{"train": blocks(4, 65), "valid": nil}, 3, []string{"valid.arrow", `split "valid" has no blocks`, "--eval-every 0"}},
		{"empty valid split, not validating", map[string][][]int32{"train": blocks(4, 65), "valid": nil}, 0, nil},
	}
	for _, c := range cases {
		o := baseOptions(stagetest.PackedBlocks(t, c.splits), filepath.Join(t.TempDir(), "run"))
		o.Steps, o.Accum, o.EvalEvery, o.CheckpointEvery = 2, 1, c.evalEvery, 0
		_, err := publish(o)
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want it to mention %q", c.name, err, w)
			}
		}
		if _, serr := os.Stat(o.Out); !os.IsNotExist(serr) {
			t.Errorf("%s: published", c.name)
		}
	}
}

// TestHostileTrainTokenizerName: packed data whose tokenizer points outside
// its artifact, or at a file it does not hold, is refused naming the data
// before any step, and no checkpoint is published.
func TestHostileTrainTokenizerName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"../x.json", "neither a built-in name"},
		{"sub/tokenizer.json", "neither a built-in name"},
		{"/nowhere/bpe-1/tokenizer.json", "no longer exists"},
		{artifact.TokenizerFile, "holds no such file"},
	} {
		data := stagetest.PackedWith(t, artifact.PackedMeta{Length: 16, Mode: "wrap", Tokenizer: c.name, VocabSize: 259, MaskIndex: 258,
			BOS: 256, EOS: 256, PAD: 256}, map[string][][]int32{"train": blocks(4, 65)})
		o := baseOptions(data, filepath.Join(t.TempDir(), "run"))
		o.Steps, o.Accum, o.EvalEvery, o.CheckpointEvery = 2, 1, 0, 0
		_, err := publish(o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), data) {
			t.Errorf("tokenizer %q: err = %v, want %q naming %s", c.name, err, c.want, data)
		}
		if _, serr := os.Stat(o.Out); !os.IsNotExist(serr) {
			t.Errorf("tokenizer %q: published", c.name)
		}
	}
}
