package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
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
	for _, c := range familyShapes(f) {
		f.Add(c.json, c.text)
	}
	for _, seed := range [][]byte{trimmedBuiltin(f, gpt2JSON, 64), trimmedBuiltin(f, bertJSON, 300)} {
		for _, s := range texts {
			f.Add(seed, s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if len(text) > 512 {
			// A hostile split pattern costs up to nodes x length^2 steps (regex.go):
			// long texts would only slow the search down.
			text = text[:512]
		}
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
	if !tok.roundTrips() {
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

// roundTrips reports whether decode(encode(x)) must be x: a byte-level BPE
// that keeps every byte (no normalizer, no pre-tokenizer that removes text, a
// token for every byte) and decodes with ByteLevel alone.
func (t *HF) roundTrips() bool {
	if t.bpe == nil || t.norm != nil || !t.byteMode || !t.byteDecode || !t.bpe.allBytes {
		return false
	}
	for _, p := range t.pre {
		switch p := p.(type) {
		case *byteLevelPre:
			if p.prefixSpace || p.mapBytes {
				return false
			}
		case *splitPre:
			if p.behavior == behRemoved {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// FuzzRegexSplit compiles arbitrary patterns and splits arbitrary text with
// them (issue 22): no panic, and a pattern that compiles yields non-empty
// matches, in order, on character boundaries, whose gaps and matches cover the
// text exactly. The seeds are the split patterns of the hub's families.
func FuzzRegexSplit(f *testing.F) {
	patterns := []string{
		`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
		`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
		`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
		`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + `{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
		`[一-龥぀-ゟ゠-ヿ]+`, ` {2,}`, `a+?b|x(?=y)|\x{41}{2,3}`,
		` ?[^(\s|[.,!?…。，、।۔،])]+`, `[a[b[c-e]]x]+`,
	}
	texts := []string{"Hello world!  It's 12345 ok\n\n x", "日本語のテキスト。I'M", "\xff\xfe a \u00a0b", "ǅ Ǆ ſ'S 'LL"}
	for i, p := range patterns {
		f.Add(p, texts[i%len(texts)])
	}
	f.Fuzz(func(t *testing.T, pattern, text string) {
		if len(text) > 512 {
			return // the memo bounds a hostile pattern's time by nodes x length^2
		}
		re, err := compileRegex(pattern)
		if err != nil {
			return
		}
		var sb strings.Builder
		prev := 0
		for i := 0; i < len(text); {
			a, b := re.find(text, i)
			if a < 0 {
				break
			}
			if a < i || b <= a || b > len(text) {
				t.Fatalf("find(%q, %d) = %d, %d", text, i, a, b)
			}
			if utf8.ValidString(text) && (!utf8.RuneStart(text[a]) || (b < len(text) && !utf8.RuneStart(text[b]))) {
				t.Fatalf("match [%d, %d) of %q splits a character", a, b, text)
			}
			sb.WriteString(text[prev:a])
			sb.WriteString(text[a:b])
			prev, i = b, b
		}
		sb.WriteString(text[prev:])
		if sb.String() != text {
			t.Fatalf("splits of %q do not cover it: %q", text, sb.String())
		}
	})
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
