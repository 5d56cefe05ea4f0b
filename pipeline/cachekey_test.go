package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The cache key ignores cosmetic flags and the spelling of a value, and
// changes with any other flag, an input's digest or a file's content.
func TestCacheKey(t *testing.T) {
	sp := reg["tokenize"]
	in := map[string]string{"text": "sha256:aaaa"}
	key := func(with map[string]any, in map[string]string) string { k, _ := CacheKey(sp, with, in); return k }
	base := key(map[string]any{"tokenizer": "gpt2"}, in)
	if key(map[string]any{"tokenizer": "gpt2", "workers": 7}, in) != base {
		t.Error("a cosmetic flag changed the key")
	}
	if key(map[string]any{"tokenizer": "bytes"}, in) == base || key(map[string]any{"tokenizer": "gpt2"}, map[string]string{"text": "sha256:bbbb"}) == base {
		t.Error("a flag or an input digest did not change the key")
	}
	if key(map[string]any{"length": 64}, nil) != key(map[string]any{"length": "64"}, nil) {
		t.Error(`64 and "64" give different keys`)
	}

	dir := t.TempDir()
	tok := filepath.Join(dir, "tok.json")
	os.WriteFile(tok, []byte(`{"a": 1}`), 0o644)
	with := map[string]any{"tokenizer": tok}
	d1 := map[string]string{}
	if err := fileDigests(sp, with, d1); err != nil || d1["tokenizer:"+tok] == "" {
		t.Fatalf("digests %v, err %v", d1, err)
	}
	os.WriteFile(tok, []byte(`{"a": 2}`), 0o644)
	d2 := map[string]string{}
	fileDigests(sp, with, d2)
	if reflect.DeepEqual(d1, d2) {
		t.Error("editing the file did not change its digest")
	}
	named := map[string]string{}
	if err := fileDigests(sp, map[string]any{"tokenizer": "gpt2"}, named); err != nil || len(named) != 0 {
		t.Errorf("a built-in tokenizer name was digested: %v %v", named, err)
	}
	if err := fileDigests(reg["download"], map[string]any{"sources": []any{filepath.Join(dir, "nope.txt")}}, map[string]string{}); err == nil {
		t.Error("a missing source file was accepted")
	}
	// A directory: by its files' digests (an artifact: by its manifest's digest).
	ck := filepath.Join(dir, "ck")
	os.MkdirAll(filepath.Join(ck, "sub"), 0o755)
	os.WriteFile(filepath.Join(ck, "sub", "w.bin"), []byte("1"), 0o644)
	evalWith := map[string]any{"checkpoint": ck}
	e1, e2 := map[string]string{}, map[string]string{}
	if err := fileDigests(reg["eval"], evalWith, e1); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ck, "sub", "w.bin"), []byte("2"), 0o644)
	fileDigests(reg["eval"], evalWith, e2)
	if e1["checkpoint:"+ck] == "" || e1["checkpoint:"+ck] == e2["checkpoint:"+ck] {
		t.Errorf("directory digests %v then %v", e1, e2)
	}
}
