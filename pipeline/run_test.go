package pipeline

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// why explains a miss with the cheapest differences first, as data.
func TestWhy(t *testing.T) {
	sp := reg["tokenize"]
	params := map[string]any{"tokenizer": "my/tok.json"}
	inputs := map[string]string{"text": "sha256:aaaa", "tokenizer:my/tok.json": "sha256:1111"}
	base := LockEntry{Key: "k", Kind: "tokenize", Version: sp.Version, Params: params, Inputs: inputs}
	with := func(edit func(*LockEntry)) LockEntry {
		e := base
		e.Params, e.Inputs = map[string]any{}, map[string]string{}
		for k, v := range base.Params {
			e.Params[k] = v
		}
		for k, v := range base.Inputs {
			e.Inputs[k] = v
		}
		edit(&e)
		return e
	}
	cases := []struct {
		name string
		prev LockEntry
		want []string
	}{
		{"no entry", LockEntry{}, []string{"never ran (no lock entry)"}},
		{"same", base, []string{"output missing or failed verification (tokens/v1)"}},
		{"version", with(func(e *LockEntry) { e.Version = 0 }), []string{"stage kind tokenize version 0 -> tokenize version 1"}},
		{"older lock format", with(func(e *LockEntry) { e.Kind, e.Version = "", 0 }), []string{"output missing or failed verification (tokens/v1)"}},
		{"param", with(func(e *LockEntry) { e.Params["tokenizer"] = "gpt2" }), []string{"param tokenizer changed: gpt2 -> my/tok.json"}},
		{"param added", with(func(e *LockEntry) { delete(e.Params, "tokenizer") }), []string{"param tokenizer changed: (default) -> my/tok.json"}},
		{"file edited", with(func(e *LockEntry) { e.Inputs["tokenizer:my/tok.json"] = "sha256:2222" }),
			[]string{"input tokenizer:my/tok.json changed: sha256:2222 -> sha256:1111"}},
		{"file added", with(func(e *LockEntry) { delete(e.Inputs, "tokenizer:my/tok.json") }), []string{"input tokenizer:my/tok.json added"}},
		{"file removed", with(func(e *LockEntry) { e.Inputs["tokenizer:old.json"] = "sha256:3" }), []string{"input tokenizer:old.json removed"}},
	}
	for _, c := range cases {
		if got := why(c.prev, sp, params, inputs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: why = %q, want %q", c.name, got, c.want)
		}
	}
}

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
