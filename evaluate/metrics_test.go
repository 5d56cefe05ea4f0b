package evaluate

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteMetricsJSON writes the metrics/v1 file as indented JSON with a final
// newline, and refuses a value JSON cannot carry, naming the file.
func TestWriteMetricsJSON(t *testing.T) {
	cases := []struct {
		name    string
		v       any
		want    string // file content; "" when an error is expected
		wantErr string
	}{
		{"perplexity", Perplexity{Split: "valid", NLL: 1.5, PPL: 4.5, Tokens: 10, Blocks: 2},
			"{\n  \"split\": \"valid\",\n  \"nll\": 1.5,\n  \"bpd\": 0,\n  \"ppl\": 4.5,\n  \"tokens\": 10,\n  \"blocks\": 2,\n  \"T\": 0,\n" +
				"  \"parameterization\": \"\",\n  \"seed\": 0,\n  \"unigram_ppl\": 0,\n  \"ema\": false\n}\n", ""},
		{"gen-ppl", GenResult{GenPPL: 40, Scored: 4, Tokens: 30, Entropy: 2, Samples: 5},
			"{\n  \"gen_ppl\": 40,\n  \"scored_samples\": 4,\n  \"scored_tokens\": 30,\n  \"entropy\": 2,\n  \"samples\": 5\n}\n", ""},
		{"not finite", GenResult{GenPPL: math.Inf(1)}, "", MetricsJSON},
	}
	for _, c := range cases {
		dir := t.TempDir()
		err := WriteMetricsJSON(dir, c.v)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err = %v, want it to name %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, MetricsJSON))
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != c.want {
			t.Errorf("%s: wrote\n%s\nwant\n%s", c.name, raw, c.want)
		}
	}
}
