package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzTrainBPE trains on arbitrary text (documents separated by NUL) and checks
// the invariants: the file loads, its vocabulary is what was asked or the
// corpus ran out of pairs, and every document of valid UTF-8 encodes and
// decodes back to itself.
func FuzzTrainBPE(f *testing.F) {
	f.Add("In the beginning God created the heaven and the earth.\x00And the earth was void.", uint16(300), int64(0))
	f.Add("aaaaaaaa bbbb aaaa<|endoftext|>ab ab ab", uint16(262), int64(2))
	f.Add("  \n\n\t x 🤗🤗 don't 'll 2024年", uint16(400), int64(1))
	f.Fuzz(func(t *testing.T, text string, vocab uint16, minFreq int64) {
		special := []string{"<|endoftext|>", "[MASK]"}
		cfg := TrainConfig{VocabSize: 258 + int(vocab%512), Special: special, MinFrequency: minFreq % 8, Workers: 2}
		if cfg.MinFrequency < 0 {
			cfg.MinFrequency = -cfg.MinFrequency
		}
		docs := strings.Split(text, "\x00")
		wc := NewWordCounts(special)
		wc.Add(docs, cfg.Workers)
		m, err := TrainBPE(wc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Tokens) > cfg.VocabSize || len(m.Tokens) < 258 {
			t.Fatalf("%d tokens for vocab size %d", len(m.Tokens), cfg.VocabSize)
		}
		data, err := m.JSON()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := Parse(data, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if tok.VocabSize() != len(m.Tokens) {
			t.Fatalf("loaded vocab %d, trained %d", tok.VocabSize(), len(m.Tokens))
		}
		for _, d := range docs {
			if !utf8.ValidString(d) {
				continue
			}
			got, err := tok.Decode(tok.Encode(d))
			if err != nil || got != d {
				t.Fatalf("decode(encode(%q)) = %q, %v", d, got, err)
			}
		}
	})
}
