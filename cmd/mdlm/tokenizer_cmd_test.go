package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/tokenizer"
)

// withStdin runs fn with os.Stdin reading text.
func withStdin(t *testing.T, text string, fn func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	fn()
}

// TestTokenizerCommand runs `mdlm tokenizer` end to end; the ids are Hugging
// Face tokenizers' (npm tokenizers 0.23.2).
func TestTokenizerCommand(t *testing.T) {
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"jsonl gpt2", "{\"text\":\"Hello world\"}\n{\"text\":\"\"}\n{\"text\":\"a<|endoftext|>\"}\n",
			[]string{"tokenizer", "encode", "--tokenizer", "gpt2"}, 0, "15496 995\n\n64 50256\n"},
		{"lines bert", "hello world\n", []string{"tokenizer", "encode", "--tokenizer", "bert-base-uncased", "--lines"}, 0, "7592 2088\n"},
		{"special bert", "{\"text\":\"hello world\"}\n", []string{"tokenizer", "encode", "--tokenizer", "bert-base-uncased", "--special"}, 0, "101 7592 2088 102\n"},
		{"decode jsonl", "15496 995\n\n", []string{"tokenizer", "decode", "--tokenizer", "gpt2"}, 0, "{\"text\":\"Hello world\"}\n{\"text\":\"\"}\n"},
		{"decode lines", "15496 995\n", []string{"tokenizer", "decode", "--tokenizer", "gpt2", "--lines"}, 0, "Hello world\n"},
		{"bad json", "not json\n", []string{"tokenizer", "encode", "--tokenizer", "gpt2"}, 1, ""},
		{"bad id", "1 x\n", []string{"tokenizer", "decode", "--tokenizer", "gpt2"}, 1, ""},
		{"id out of range", "99999999\n", []string{"tokenizer", "decode", "--tokenizer", "gpt2"}, 1, ""},
		{"inspect", "", []string{"tokenizer", "inspect", "bert-base-uncased"}, 0, "WordPiece"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withStdin(t, c.stdin, func() {
				out, errOut, code := mdlm(t, c.args...)
				if code != c.code {
					t.Fatalf("exit %d, want %d; stderr %s", code, c.code, errOut)
				}
				if c.code == 0 && c.name != "inspect" && out != c.want {
					t.Errorf("stdout %q, want %q", out, c.want)
				}
				if c.name == "inspect" && !strings.Contains(out, c.want) {
					t.Errorf("stdout %q lacks %q", out, c.want)
				}
			})
		})
	}
}

// TestTokenizerRoundTrip: encode then decode gives the text back (GPT-2 is lossless).
func TestTokenizerRoundTrip(t *testing.T) {
	tok, err := tokenizer.Load("gpt2")
	if err != nil {
		t.Fatal(err)
	}
	in := "{\"text\":\"tabs\\tand\\nnewlines \\u0000 and émoji 👍🏽\"}\n{\"text\":\"<b>&amp;</b>\"}\n"
	var ids, back bytes.Buffer
	if err := encodeStream(tok, strings.NewReader(in), &ids, false, false); err != nil {
		t.Fatal(err)
	}
	if err := decodeStream(tok, &ids, &back, false); err != nil {
		t.Fatal(err)
	}
	if back.String() != in {
		t.Errorf("round trip %q, want %q", back.String(), in)
	}
}

// TestTokenizerInspectDescribe lists the components and special tokens in id order.
func TestTokenizerInspectDescribe(t *testing.T) {
	tok, err := tokenizer.Load("bert-base-uncased")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeDescription(&out, describe(tok)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"model          WordPiece", "normalizer     BertNormalizer", "vocab size     30522", "  0\t\"[PAD]\"", "  103\t\"[MASK]\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
}
