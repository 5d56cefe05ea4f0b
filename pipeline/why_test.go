package pipeline

import (
	"reflect"
	"testing"
)

// why explains a miss with the cheapest differences first, as data.
func TestWhy(t *testing.T) {
	sp := reg["tokenize"]
	params := map[string]any{"tokenizer": "my/tok.json"}
	inputs := map[string]string{"text": "sha256:aaaa", "tokenizer:my/tok.json": "sha256:1111"}
	base := LockEntry{Format: KeyFormat, Key: "k", Kind: "tokenize", Version: sp.Version, Params: params, Inputs: inputs}
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
		{"key format 1", with(func(e *LockEntry) { e.Format = 0; e.Params["batch"] = "16" }),
			[]string{"cache key format changed (1 -> 2): parameters are now keyed with their defaults filled in"}},
		{"key format 1, input changed", with(func(e *LockEntry) { e.Format = 0; e.Inputs["text"] = "sha256:bbbb" }),
			[]string{"cache key format changed (1 -> 2): parameters are now keyed with their defaults filled in", "input text changed: sha256:bbbb -> sha256:aaaa"}},
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
