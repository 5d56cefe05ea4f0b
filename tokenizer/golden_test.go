package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// GoldenEnv overrides the golden folder.
const GoldenEnv = "MDLM_TOKENIZER_GOLDEN"

func goldenDir(t testing.TB) string {
	if d := os.Getenv(GoldenEnv); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "fixtures", "tokenizer")
}

type goldenLine struct {
	Text    string `json:"text"`
	IDsGPT2 []int  `json:"ids_gpt2"`
	IDsBert []int  `json:"ids_bert"`
	Source  string `json:"source"`
}

// TestTokenizerGolden matches every id list of every *.jsonl golden file exactly,
// and decodes the GPT-2 ids back to the exact text.
func TestTokenizerGolden(t *testing.T) {
	dir := goldenDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden *.jsonl files in %s (set %s): %v", dir, GoldenEnv, err)
	}
	gpt2, err := Load("gpt2")
	if err != nil {
		t.Fatal(err)
	}
	bertTok, err := Load("bert-base-uncased")
	if err != nil {
		t.Fatal(err)
	}
	bert := bertTok.(*HF)
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		n, bad := 0, 0
		for line := 1; sc.Scan(); line++ {
			var g goldenLine
			if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
			n++
			if g.IDsGPT2 != nil {
				got := gpt2.Encode(g.Text)
				if !reflect.DeepEqual(got, g.IDsGPT2) && !(len(got) == 0 && len(g.IDsGPT2) == 0) {
					bad++
					if bad <= 10 {
						t.Errorf("%s:%d gpt2 Encode(%q) =\n  %v\nwant\n  %v", filepath.Base(file), line, g.Text, got, g.IDsGPT2)
					}
				}
				if text, err := gpt2.Decode(g.IDsGPT2); err != nil || text != g.Text {
					bad++
					t.Errorf("%s:%d gpt2 Decode = %q, %v; want %q", filepath.Base(file), line, text, err, g.Text)
				}
			}
			if g.IDsBert != nil {
				got := bert.EncodeSpecial(g.Text)
				if !reflect.DeepEqual(got, g.IDsBert) {
					bad++
					if bad <= 10 {
						t.Errorf("%s:%d bert Encode(%q) =\n  %v\nwant\n  %v", filepath.Base(file), line, g.Text, got, g.IDsBert)
					}
				}
			}
		}
		f.Close()
		t.Logf("%s: %d lines, %d mismatches", filepath.Base(file), n, bad)
	}
}
