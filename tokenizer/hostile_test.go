package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Tests for issue 19, defect 9: tokenizer.json ids are not bounded.

// byteVocab is a byte-level BPE vocabulary: the 256 byte tokens at ids 0..255,
// then extra at the ids given.
func byteVocab(extra map[string]int) map[string]int {
	v := make(map[string]int, 256+len(extra))
	for b := 0; b < 256; b++ {
		v[string(byteToRune[b])] = b
	}
	for k, id := range extra {
		v[k] = id
	}
	return v
}

// bpeJSON is a small byte-level BPE tokenizer.json; added and post are raw JSON
// ("" leaves them out).
func bpeJSON(t testing.TB, vocab map[string]int, merges any, added, post string) []byte {
	t.Helper()
	model := map[string]any{"type": "BPE", "vocab": vocab, "merges": merges}
	m, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	return assemble(string(m), `{"type":"ByteLevel","add_prefix_space":false}`, `{"type":"ByteLevel"}`, added, post)
}

// wpJSON is a small WordPiece tokenizer.json over vocab (which must hold [UNK]).
func wpJSON(t testing.TB, vocab map[string]int, modelExtra, added, post string) []byte {
	t.Helper()
	v, err := json.Marshal(vocab)
	if err != nil {
		t.Fatal(err)
	}
	model := `{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##"` + modelExtra + `,"vocab":` + string(v) + `}`
	return assemble(model, `{"type":"BertPreTokenizer"}`, `{"type":"WordPiece","prefix":"##"}`, added, post)
}

func assemble(model, pre, dec, added, post string) []byte {
	var sb strings.Builder
	sb.WriteString(`{"version":"1.0","model":` + model + `,"pre_tokenizer":` + pre + `,"decoder":` + dec)
	if added != "" {
		sb.WriteString(`,"added_tokens":` + added)
	}
	if post != "" {
		sb.WriteString(`,"post_processor":` + post)
	}
	sb.WriteString("}")
	return []byte(sb.String())
}

var wpVocab = map[string]int{"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "##b": 4}

type hostileCase struct {
	name string
	json []byte
	want string // in the error, beside the file name
}

// hostileCases are files the reader must refuse (also the fuzz seeds).
func hostileCases(t testing.TB) []hostileCase {
	abMerges := []string{"a b"}
	return []hostileCase{
		{"bpe id 2^40", bpeJSON(t, byteVocab(map[string]int{"xyz": 1 << 40}), []string{}, "", ""),
			`model.vocab["xyz"]: id 1099511627776 beyond the vocabulary's 257 entries`},
		{"bpe negative id", bpeJSON(t, byteVocab(map[string]int{"xyz": -1}), []string{}, "", ""),
			`model.vocab["xyz"]: negative id -1`},
		{"bpe id past the slack", bpeJSON(t, byteVocab(map[string]int{"xyz": 257 + IDSlack}), []string{}, "", ""),
			`model.vocab["xyz"]: id 1281 beyond`},
		{"bpe two tokens one id", bpeJSON(t, byteVocab(map[string]int{"xyz": 5}), []string{}, "", ""),
			`id 5 already belongs to`},
		{"bpe merge of an unknown token", bpeJSON(t, byteVocab(map[string]int{"ab": 256}), []string{"a zz"}, "", ""),
			`model.merges[0] "a zz": token "zz" not in model.vocab`},
		{"bpe merge result unknown", bpeJSON(t, byteVocab(nil), abMerges, "", ""),
			`model.merges[0] "a b": token "ab" not in model.vocab`},
		{"bpe merge with two spaces", bpeJSON(t, byteVocab(map[string]int{"ab": 256}), []string{"a b c"}, "", ""),
			`model.merges[0] "a b c": not two tokens`},
		{"bpe merge pair of three", bpeJSON(t, byteVocab(map[string]int{"ab": 256}), [][]string{{"a", "b", "c"}}, "", ""),
			`model.merges[0]: 3 tokens`},
		{"bpe merges missing", bpeJSON(t, byteVocab(nil), nil, "", ""), `model.merges: missing`},
		{"added token at 2^31-2", bpeJSON(t, byteVocab(nil), []string{}, `[{"id":2147483646,"content":"<x>","special":true}]`, ""),
			`added_tokens[0] "<x>": id 2147483646, but the reference tokenizers library gives it id 256`},
		{"added token at 2^40", bpeJSON(t, byteVocab(nil), []string{}, `[{"id":1099511627776,"content":"<x>"}]`, ""),
			`added_tokens[0] "<x>": id 1099511627776`},
		{"added token negative", bpeJSON(t, byteVocab(nil), []string{}, `[{"id":-1,"content":"<x>"}]`, ""),
			`added_tokens[0] "<x>": id -1`},
		{"added token of the model at another id", bpeJSON(t, byteVocab(nil), []string{}, `[{"id":7,"content":"a"}]`, ""),
			`added_tokens[0] "a": id 7, but the reference tokenizers library gives it id 97 (its id in model.vocab)`},
		{"added token repeated at another id", bpeJSON(t, byteVocab(nil), []string{},
			`[{"id":256,"content":"<x>"},{"id":257,"content":"<x>"}]`, ""),
			`added_tokens[1] "<x>": id 257, but the reference tokenizers library gives it id 256 (its id earlier`},
		{"added token on a hole's neighbour", bpeJSON(t, byteVocab(map[string]int{"ab": 257}), []string{},
			`[{"id":257,"content":"<x>"}]`, ""),
			`added_tokens[0] "<x>": the reference tokenizers library would give it id 257, which already belongs to model.vocab["ab"]`},
		{"template id 2^40", bpeJSON(t, byteVocab(nil), []string{}, "",
			`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}},{"Sequence":{"id":"A"}}],"special_tokens":{"<s>":{"ids":[1099511627776]}}}`),
			`post_processor: special_tokens["<s>"].ids[0]: id 1099511627776 is not in the vocabulary`},
		{"template id -1", bpeJSON(t, byteVocab(nil), []string{}, "",
			`{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A"}},{"SpecialToken":{"id":"</s>"}}],"special_tokens":{"</s>":{"ids":[-1]}}}`),
			`special_tokens["</s>"].ids[0]: id -1 is not in the vocabulary`},
		{"wordpiece id -1", wpJSON(t, map[string]int{"[UNK]": 0, "a": -1}, "", "", ""),
			`model.vocab["a"]: negative id -1`},
		{"wordpiece id 2^40", wpJSON(t, map[string]int{"[UNK]": 1 << 40}, "", "", ""),
			`model.vocab["[UNK]"]: id 1099511627776 beyond the vocabulary's 1 entries`},
		{"wordpiece empty vocabulary", wpJSON(t, map[string]int{}, "", "", ""), `model.vocab: empty`},
		{"wordpiece unk missing", wpJSON(t, map[string]int{"a": 0}, "", "", ""), `model.unk_token "[UNK]" not in model.vocab`},
		{"wordpiece negative max chars", wpJSON(t, wpVocab, `,"max_input_chars_per_word":-5`, "", ""),
			`model.max_input_chars_per_word: negative`},
		{"bert processing cls 2^40", wpJSON(t, wpVocab, "", "",
			`{"type":"BertProcessing","cls":["[CLS]",1099511627776],"sep":["[SEP]",2]}`),
			`post_processor: cls[1]: id 1099511627776 is not in the vocabulary`},
		{"bert processing sep on a hole", wpJSON(t, map[string]int{"[UNK]": 0, "[CLS]": 1, "[SEP]": 3}, "", "",
			`{"type":"BertProcessing","cls":["[CLS]",1],"sep":["[SEP]",2]}`),
			`post_processor: sep[1]: id 2 is not in the vocabulary`},
		{"wordpiece added token at 2^31-2", wpJSON(t, wpVocab, "", `[{"id":2147483646,"content":"[MASK]","special":true}]`, ""),
			`added_tokens[0] "[MASK]": id 2147483646, but the reference tokenizers library gives it id 5`},
	}
}

func TestHostileTokenizerIDs(t *testing.T) {
	for _, c := range hostileCases(t) {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Parse(c.json, "tok.json")
			if err == nil {
				t.Fatalf("loaded (vocab size %d), want an error containing %q", tok.VocabSize(), c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tok.json") {
				t.Errorf("err = %v\nwant it to name tok.json and contain %q", err, c.want)
			}
		})
	}
}

// TestHostileTokenizerAcceptsRealShapes: what the reference accepts and real
// files do still loads, with the reference's ids.
type shapeCase struct {
	name      string
	json      []byte
	vocabSize int
	text      string
	ids       []int
}

// realShapeCases are small files the reader must accept (also the fuzz seeds).
func realShapeCases(t testing.TB) []shapeCase {
	return []shapeCase{
		{"added tokens after the vocabulary", bpeJSON(t, byteVocab(map[string]int{"ab": 256}), []string{"a b"},
			`[{"id":257,"content":"<x>","special":true},{"id":97,"content":"a"},{"id":258,"content":"<y>"},{"id":257,"content":"<x>","special":true}]`, ""),
			259, "ab<y>a<x>", []int{97, 98, 258, 97, 257}},
		{"holes within the slack", bpeJSON(t, byteVocab(map[string]int{"ab": 256 + 100}), []string{"a b"}, "", ""),
			357, "abab", []int{356, 356}},
		{"repeated merge takes the later rank", bpeJSON(t, byteVocab(map[string]int{"ab": 256, "bc": 257}),
			[]string{"a b", "b c", "a b"}, "", ""),
			258, "abc", []int{'a', 257}},
		{"merges as pairs", bpeJSON(t, byteVocab(map[string]int{"ab": 256}), [][]string{{"a", "b"}}, "", ""),
			257, "ab", []int{256}},
		{"wordpiece with a template", wpJSON(t, wpVocab, "", "",
			`{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]"}},{"Sequence":{"id":"A"}},{"SpecialToken":{"id":"[SEP]"}}],"special_tokens":{"[CLS]":{"ids":[1]},"[SEP]":{"ids":[2]}}}`),
			5, "ab", []int{3, 4}},
		{"wordpiece max chars 0", wpJSON(t, wpVocab, `,"max_input_chars_per_word":0`, "", ""),
			5, "ab", []int{0}},
	}
}

func TestHostileTokenizerAcceptsRealShapes(t *testing.T) {
	for _, c := range realShapeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Parse(c.json, "tok.json")
			if err != nil {
				t.Fatal(err)
			}
			if tok.VocabSize() != c.vocabSize {
				t.Errorf("VocabSize = %d, want %d", tok.VocabSize(), c.vocabSize)
			}
			if got := tok.Encode(c.text); !reflect.DeepEqual(got, c.ids) {
				t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.ids)
			}
		})
	}
}

func TestHostileTokenizerFileSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileBytes + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = LoadFile(path)
	if err == nil || !strings.Contains(err.Error(), "big.json") || !strings.Contains(err.Error(), "limit") {
		t.Errorf("LoadFile(oversized) err = %v", err)
	}
	if _, err := Parse(make([]byte, MaxFileBytes+1), "x.json"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("Parse(oversized) err = %v", err)
	}
}

// TestHostileTokenizerKeys: keys are exact and unique, as the reference's serde
// readers see them; encoding/json alone would fold case and merge repeats.
func TestHostileTokenizerKeys(t *testing.T) {
	good := string(bpeJSON(t, byteVocab(map[string]int{"ab": 256}), []string{"a b"}, "", ""))
	cases := []struct{ name, json, want string }{
		{"model key in another case", strings.Replace(good, `"model"`, `"Model"`, 1),
			`top level: key "Model": the field is "model"`},
		{"merges beside Merges", strings.Replace(good, `"merges":["a b"]`, `"merges":[],"Merges":["a b"]`, 1),
			`model: key "Merges": the field is "merges"`},
		{"kelvin sign", strings.Replace(good, `"version"`, `"added_to\u212aens":[{"id":256,"content":"<x>"}],"version"`, 1),
			"top level: key \"added_to\u212aens\": the field is \"added_tokens\""},
		{"vocab twice", strings.Replace(good, `"vocab":`, `"vocab":{"zz":1},"vocab":`, 1), `model: key "vocab" appears twice`},
		{"added token field case", strings.Replace(good, `"version"`, `"added_tokens":[{"ID":256,"content":"<x>"}],"version"`, 1),
			`added_tokens[0]: key "ID": the field is "id"`},
		{"nested too deep", strings.Replace(good, `"version":"1.0"`, `"version":`+strings.Repeat("[", maxJSONDepth+1)+strings.Repeat("]", maxJSONDepth+1), 1),
			`nested deeper than 64 levels`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.json), "tok.json")
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tok.json") {
				t.Errorf("err = %v\nwant it to name tok.json and contain %q", err, c.want)
			}
		})
	}
	// Vocabulary tokens are data: case variants are distinct tokens.
	if _, err := Parse(bpeJSON(t, byteVocab(map[string]int{"Type": 256, "TYPE": 257, "vocab": 258}), []string{}, "", ""), "ok.json"); err != nil {
		t.Errorf("vocabulary with field-like tokens: %v", err)
	}
}
