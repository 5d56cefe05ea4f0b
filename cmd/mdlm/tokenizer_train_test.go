package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/tokenizer"
)

// TestTokenizerTrainCommand: `mdlm tokenizer train` on a plain text file
// writes a tokenizer.json of the asked size that encodes the corpus's words as
// single tokens; bad flags and inputs fail naming what is wrong.
func TestTokenizerTrainCommand(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "c.txt")
	text := strings.Repeat("In the beginning God created the heaven and the earth.\n", 50)
	if err := os.WriteFile(corpus, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tok.json")
	if _, errOut, code := mdlm(t, "tokenizer", "train", "--vocab-size", "300", "--special", "<|endoftext|>", "--special", "[MASK]", "-o", out, corpus); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	tok, err := tokenizer.LoadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() > 300 || tok.VocabSize() < 270 {
		t.Errorf("vocab size %d", tok.VocabSize())
	}
	if ids := tok.Encode(" beginning"); len(ids) != 1 {
		t.Errorf(" beginning: %v, want one token", ids)
	}
	if id, ok := tok.TokenID("[MASK]"); !ok || id != 1 {
		t.Errorf("[MASK] id %d %v", id, ok)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"vocab too small", []string{"--vocab-size", "100", "-o", out, corpus}, "vocab size"},
		{"vocab too large", []string{"--vocab-size", "2000000", "-o", out, corpus}, "vocab size"},
		{"missing input", []string{"-o", out, filepath.Join(dir, "none.txt")}, "none.txt"},
		{"dir without shards", []string{"-o", out, dir}, "train-*.parquet"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errOut, code := mdlm(t, append([]string{"tokenizer", "train"}, c.args...)...)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q lacks %q", code, errOut, c.want)
			}
		})
	}
}
