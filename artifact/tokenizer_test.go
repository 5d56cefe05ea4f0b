package artifact

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolveTokenizer: a recorded tokenizer name is a built-in name, the
// artifact's own regular tokenizer.json, or an older artifact's absolute path
// that still exists; anything else (a hostile or stale manifest) is an error
// naming the artifact.
func TestResolveTokenizer(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, TokenizerFile)
	old := filepath.Join(t.TempDir(), "bpe-1", TokenizerFile)
	for _, p := range []string{own, old} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(`{}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	linked := t.TempDir()
	if err := os.Symlink(old, filepath.Join(linked, TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir, name, want, err string
		gone                 bool
	}{
		{dir, "gpt2", "gpt2", "", false},
		{dir, "bytes", "bytes", "", false},
		{dir, TokenizerFile, own, "", false},
		{dir, old, old, "", false},
		{t.TempDir(), TokenizerFile, "", "holds no such file", false},
		{linked, TokenizerFile, "", "not a regular file", false},
		{dir, "/nowhere/bpe-1/tokenizer.json", "", "rebuild the artifact", true},
		{dir, "/etc/passwd", "", "neither a built-in name", false},
		{dir, "../bpe/tokenizer.json", "", "neither a built-in name", false},
		{dir, "sub/tokenizer.json", "", "neither a built-in name", false},
		{dir, "other.json", "", "neither a built-in name", false},
		{dir, `a\b`, "", "neither a built-in name", false},
	}
	for _, c := range cases {
		got, err := ResolveTokenizer(c.dir, c.name)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), c.dir) {
				t.Errorf("ResolveTokenizer(%q) = %q, %v; want an error naming the artifact and %q", c.name, got, err, c.err)
			}
			if errors.Is(err, ErrTokenizerGone) != c.gone {
				t.Errorf("ResolveTokenizer(%q): %v: ErrTokenizerGone %v, want %v", c.name, err, !c.gone, c.gone)
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

// FuzzResolveTokenizer feeds the resolver arbitrary recorded names (a hostile
// manifest's or config.json's "tokenizer"): it never panics, and what it
// accepts is a built-in-like name without a separator, the artifact's own
// tokenizer.json, or an existing absolute .json path taken as written.
func FuzzResolveTokenizer(f *testing.F) {
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TokenizerFile), []byte(`{}`), 0o644); err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"gpt2", TokenizerFile, "../tokenizer.json", "/etc/passwd", "sub/tokenizer.json", `a\b`,
		"./tokenizer.json", "tokenizer.json/", filepath.Join(dir, TokenizerFile), "..", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := ResolveTokenizer(dir, name)
		if err != nil {
			if !strings.Contains(err.Error(), dir) {
				t.Fatalf("ResolveTokenizer(%q): error %v does not name the artifact", name, err)
			}
			return
		}
		switch {
		case name == TokenizerFile:
			if got != filepath.Join(dir, TokenizerFile) {
				t.Fatalf("own file resolved to %q", got)
			}
		case filepath.IsAbs(name):
			if got != name || !IsTokenizerPath(name) {
				t.Fatalf("absolute %q resolved to %q", name, got)
			}
			if _, err := os.Stat(name); err != nil {
				t.Fatalf("absolute %q accepted but: %v", name, err)
			}
		default:
			if got != name || IsTokenizerPath(name) || strings.ContainsAny(name, `/\`) {
				t.Fatalf("%q resolved to %q", name, got)
			}
		}
	})
}
