package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveTokenizer(t *testing.T) {
	dir := "/data/tokens-1"
	cases := []struct{ name, want, err string }{
		{"gpt2", "gpt2", ""},
		{"bytes", "bytes", ""},
		{TokenizerFile, filepath.Join(dir, TokenizerFile), ""},
		{"/old/cache/bpe-1/tokenizer.json", "/old/cache/bpe-1/tokenizer.json", ""},
		{"../bpe/tokenizer.json", "", "neither a built-in name"},
		{"sub/tokenizer.json", "", "neither a built-in name"},
		{"other.json", "", "neither a built-in name"},
		{`a\b`, "", "neither a built-in name"},
	}
	for _, c := range cases {
		got, err := ResolveTokenizer(dir, c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), dir) {
				t.Errorf("ResolveTokenizer(%q) = %q, %v; want an error naming the artifact", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ResolveTokenizer(%q) = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestEmbedTokenizer(t *testing.T) {
	src := filepath.Join(t.TempDir(), "my.json")
	if err := os.WriteFile(src, []byte(`{"model":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name, err := EmbedTokenizer(dir, src)
	if err != nil || name != TokenizerFile {
		t.Fatalf("EmbedTokenizer = %q, %v", name, err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, TokenizerFile)); string(got) != `{"model":{}}` {
		t.Errorf("copied %q", got)
	}
	// Embedding the artifact's own file again is a no-op.
	if name, err := EmbedTokenizer(dir, filepath.Join(dir, TokenizerFile)); err != nil || name != TokenizerFile {
		t.Errorf("re-embed = %q, %v", name, err)
	}
	if name, err := EmbedTokenizer(dir, "gpt2"); err != nil || name != "gpt2" {
		t.Errorf("built-in = %q, %v", name, err)
	}
	if _, err := EmbedTokenizer(dir, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing file embedded without an error")
	}
}
