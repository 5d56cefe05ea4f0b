package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzLoadJSON loads arbitrary tokenizer.json bytes (issue 19, defect 9): no
// panic, no huge allocation, and a file that loads encodes text to ids inside
// its vocabulary that decode without error; a byte-level BPE gives the text
// back exactly when no added token occurs in it.
func FuzzLoadJSON(f *testing.F) {
	texts := []string{"Hello, world!", "ab abc  \n\t x", "日本語 é\u0301", "\xff\xfe a", "[CLS] a ##b <x>"}
	for i, c := range hostileCases(f) {
		f.Add(c.json, texts[i%len(texts)])
	}
	for _, c := range realShapeCases(f) {
		f.Add(c.json, c.text)
	}
	for _, seed := range [][]byte{trimmedBuiltin(f, gpt2JSON, 64), trimmedBuiltin(f, bertJSON, 300)} {
		for _, s := range texts {
			f.Add(seed, s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		tok, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		checkLoaded(t, tok, text)
	})
}

// checkLoaded checks the invariants of a tokenizer that loaded.
func checkLoaded(t *testing.T, tok *HF, text string) {
	n := tok.VocabSize()
	if n <= 0 || n > MaxTokenID {
		t.Fatalf("VocabSize = %d", n)
	}
	for _, ids := range [][]int{tok.Encode(text), tok.EncodeSpecial(text)} {
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("Encode(%q): id %d outside [0, %d)", text, id, n)
			}
		}
		if _, err := tok.Decode(ids); err != nil {
			t.Fatalf("Decode(Encode(%q)): %v", text, err)
		}
	}
	if tok.bpe == nil {
		return
	}
	for _, a := range tok.added {
		if strings.Contains(text, a.Content) {
			return // an added token decodes as the model's bytes or its content
		}
	}
	if back, _ := tok.Decode(tok.Encode(text)); back != text {
		t.Fatalf("Decode(Encode(%q)) = %q", text, back)
	}
}

// trimmedBuiltin cuts a built-in tokenizer.json down to the model ids below
// keep (GPT-2's merge results follow its 256 byte tokens in rank order, so
// keeping ids below 256+k keeps exactly the first k merges' results), with the
// added tokens moved to the ids the reference would give them.
func trimmedBuiltin(tb testing.TB, data []byte, keep int) []byte {
	tb.Helper()
	var file map[string]json.RawMessage
	if err := json.Unmarshal(data, &file); err != nil {
		tb.Fatal(err)
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(file["model"], &model); err != nil {
		tb.Fatal(err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(model["vocab"], &vocab); err != nil {
		tb.Fatal(err)
	}
	if _, ok := model["merges"]; ok {
		keep += 256
		var merges []string
		if err := json.Unmarshal(model["merges"], &merges); err != nil {
			tb.Fatal(err)
		}
		model["merges"] = mustJSON(tb, merges[:keep-256])
	}
	for tok, id := range vocab {
		if id >= keep {
			delete(vocab, tok)
		}
	}
	model["vocab"] = mustJSON(tb, vocab)
	file["model"] = mustJSON(tb, model)
	var added []map[string]any
	if err := json.Unmarshal(file["added_tokens"], &added); err != nil {
		tb.Fatal(err)
	}
	next := len(vocab)
	for _, a := range added {
		if id, ok := vocab[a["content"].(string)]; ok {
			a["id"] = id
		} else {
			a["id"] = next
			next++
		}
	}
	file["added_tokens"] = mustJSON(tb, added)
	return mustJSON(tb, file)
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestTrimmedBuiltinsLoad keeps the fuzz seeds honest: the trimmed files load.
func TestTrimmedBuiltinsLoad(t *testing.T) {
	for name, data := range map[string][]byte{"gpt2": trimmedBuiltin(t, gpt2JSON, 64), "bert": trimmedBuiltin(t, bertJSON, 300)} {
		tok, err := Parse(data, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkLoaded(t, tok, "Hello, world! [CLS] <|endoftext|>")
	}
}
