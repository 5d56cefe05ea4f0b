package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
