package tokenizer

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// FuzzScanDocument: a document scanDocument accepts is valid JSON, and the
// bytes it finds for each top-level field, and for each field of an object
// model, are the ones encoding/json finds; a document it refuses for its
// syntax is one encoding/json refuses too.
func FuzzScanDocument(f *testing.F) {
	for _, c := range hostileCases(f) {
		f.Add(c.json)
	}
	for _, c := range realShapeCases(f) {
		f.Add(c.json)
	}
	f.Add([]byte(`null`))
	f.Add([]byte(` {"model": {"vocab": {"a": 1}, "merges": [["a", "b"]]}, "x": [1, {"y": 2}]} `))
	f.Add([]byte(`{"model": 1} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := scanDocument(data)
		var top map[string]json.RawMessage
		jsonErr := json.Unmarshal(data, &top)
		if err != nil {
			if jsonErr == nil && !keyCheck(err) {
				t.Fatalf("scanDocument refused what encoding/json reads: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("scanDocument accepted invalid JSON %q", data)
		}
		if jsonErr != nil { // JSON, but not an object: only null is taken, as nothing
			if doc.top != nil || !bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
				t.Fatalf("scanDocument took %q, a JSON value that is not an object", data)
			}
			return
		}
		sameFields(t, "top level", doc.top, top)
		var model map[string]json.RawMessage
		if json.Unmarshal(top["model"], &model) == nil && model != nil {
			sameFields(t, "model", doc.model, model)
		} else if doc.model != nil {
			t.Fatalf("model fields %v for a model that is not an object", slices.Sorted(maps.Keys(doc.model)))
		}
	})
}

// keyCheck reports whether err is one of scanDocument's own refusals, of a
// document that is valid JSON.
func keyCheck(err error) bool {
	for _, s := range []string{"appears twice", "keys are case-sensitive", "nested deeper than"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

func sameFields(t *testing.T, where string, got, want map[string]json.RawMessage) {
	t.Helper()
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("%s: keys %q, encoding/json finds %q", where, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("%s.%s: bytes %q, encoding/json finds %q", where, k, got[k], v)
		}
	}
}

// FuzzFastTables: when the fast table readers take a table, they read what
// encoding/json reads from it.
func FuzzFastTables(f *testing.F) {
	for _, s := range []string{`{"a": 1, "b": 2}`, `{"a": 1, "a": 2}`, `{"\u00e9\ud800": -0}`, `{"a": 1.0}`, `{"a": 1e2}`,
		`{"a": 99999999999999999999}`, `{"a": null}`, "{\"\xff\": 3}", `["a b", "c d"]`, `[["a", "b"], ["c", "d"]]`,
		`[["a", "b", "c"]]`, `["a  b"]`, `[["a", null]]`, `[null]`, `[]`, `{}`, `["a b", ["c", "d"]]`, "[\"\xc3 b\"]",
		`[["a", -1.5], ["b", 0]]`, `[["a", 1e400]]`, `[["a", null]]`, `[["a", 1, 2]]`, `[["a"]]`, `[[1, 2]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if vocab, ok := fastVocab(raw); ok {
			var want map[string]int
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("fastVocab took %q, encoding/json: %v", raw, err)
			}
			if !reflect.DeepEqual(vocab, want) {
				t.Fatalf("fastVocab(%q) = %v, encoding/json %v", raw, vocab, want)
			}
		}
		if merges, ok := fastMerges(raw); ok {
			want, err := slowMerges(raw)
			if err != nil {
				t.Fatalf("fastMerges took %q, encoding/json: %v", raw, err)
			}
			if !reflect.DeepEqual(merges, want) && len(merges)+len(want) != 0 {
				t.Fatalf("fastMerges(%q) = %q, encoding/json %q", raw, merges, want)
			}
		}
		if tokens, scores, ok := fastUnigramVocab(raw); ok {
			var vocab [][2]json.RawMessage
			if err := json.Unmarshal(raw, &vocab); err != nil {
				t.Fatalf("fastUnigramVocab took %q, encoding/json: %v", raw, err)
			}
			wantTokens, wantScores, err := unigramEntries(vocab)
			if err != nil {
				t.Fatalf("fastUnigramVocab took %q, encoding/json: %v", raw, err)
			}
			if !slices.Equal(tokens, wantTokens) || !slices.Equal(scores, wantScores) {
				t.Fatalf("fastUnigramVocab(%q) = %q %v, encoding/json %q %v", raw, tokens, scores, wantTokens, wantScores)
			}
		}
	})
}

// TestScanDocumentErrors: a document that is not one JSON object is refused
// with what is wrong and where.
func TestScanDocumentErrors(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{``, "unexpected EOF"},
		{`{"model": {}} {}`, "more data after the top-level value, which ends at offset 13"},
		{`{"model": {}} x`, "invalid character 'x'"},
		{`[1, 2]`, "a JSON object expected, found an array"},
		{`"model"`, "a JSON object expected, found a string"},
		{`"\u12"`, "invalid escape sequence"},
		{`{"model": {"vocab": {"a": 1}`, "unexpected EOF"},
		{`{"model": {"vocab": {"a": }}}`, "invalid character '}'"},
		{`{"a": 1, "a": 2}`, `top level: key "a" appears twice`},
	} {
		if _, err := scanDocument([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("scanDocument(%q) err = %v, want it to contain %q", c.doc, err, c.want)
		}
	}
	doc, err := scanDocument([]byte(" null "))
	if err != nil || doc.top != nil {
		t.Errorf("scanDocument(null) = %v, %v; want no fields, no error", doc, err)
	}
	doc, err = scanDocument([]byte("{\"model\" :\n {\"type\": \"BPE\", \"vocab\" : {\"a\": 0} } , \"x\":[1] }"))
	if err != nil || string(doc.top["x"]) != "[1]" || string(doc.model["vocab"]) != `{"a": 0}` || string(doc.model["type"]) != `"BPE"` {
		t.Errorf("scanDocument fields: top %q model %q err %v", doc.top, doc.model, err)
	}
}
