package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestHostileUnsupportedNamesPath: an unsupported component is refused with
// its JSON path and value, wrapping ErrUnsupported, the same on every run
// (issue 22, errors).
func TestHostileUnsupportedNamesPath(t *testing.T) {
	v, err := json.Marshal(byteVocab(nil))
	if err != nil {
		t.Fatal(err)
	}
	model := `{"type":"BPE","vocab":` + string(v) + `,"merges":[]}`
	cases := []struct {
		name, file, want string
	}{
		{"model type", `{"model":{"type":"Mystery","vocab":[["a",0]]}}`, `model.type "Mystery"`},
		{"normalizer", `{"model":` + model + `,"normalizer":{"type":"Mystery","precompiled_charsmap":""}}`, `normalizer.type "Mystery"`},
		{"nested normalizer", `{"model":` + model + `,"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Mystery"}]}}`,
			`normalizer.normalizers[1].type "Mystery"`},
		{"pre_tokenizer", `{"model":` + model + `,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Digits"},{"type":"Mystery"}]}}`,
			`pre_tokenizer.pretokenizers[1].type "Mystery"`},
		{"unigram without unk", `{"model":{"type":"Unigram","unk_id":null,"vocab":[["a",0]]}}`, `model.unk_id null`},
		{"wordlevel without unk", `{"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"<unk>"}}`, `model.unk_token "<unk>"`},
		{"look-behind", `{"model":` + model + `,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(?<=a)b"},"behavior":"Isolated","invert":false}}`,
			`pre_tokenizer.pattern.Regex "(?<=a)b"`},
		{"\\w", `{"model":` + model + `,"pre_tokenizer":{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated","invert":false}}`,
			`pre_tokenizer.pattern.Regex`},
		{"decoder", `{"model":` + model + `,"decoder":{"type":"Mystery"}}`, `decoder.type "Mystery"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var first string
			for run := 0; run < 5; run++ {
				_, err := Parse([]byte(c.file), "f.json")
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("error %v does not wrap ErrUnsupported", err)
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %q does not name %s", err, c.want)
				}
				if run == 0 {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("message changed between runs: %q then %q", first, err)
				}
			}
		})
	}
}

// TestHostileNonByteLevelEntry: a byte-level BPE whose vocabulary holds entries
// outside the byte alphabet (Cohere, DeepSeek-V3) loads, as in HF; such an
// entry decodes to its own UTF-8 bytes (the ByteLevel decoder's fallback).
func TestHostileNonByteLevelEntry(t *testing.T) {
	for run := 0; run < 3; run++ {
		tok, err := Parse(bpeJSON(t, byteVocab(map[string]int{"<｜end▁of▁sentence｜>": 256, "▁x": 257}), [][2]string{}, "", ""), "f.json")
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		if got := tok.Encode("ab"); len(got) != 2 {
			t.Errorf("Encode(ab) = %v", got)
		}
		if got, err := tok.Decode([]int{257, int('a') - 33}); err != nil || !strings.HasPrefix(got, "▁x") {
			t.Errorf("Decode = %q, %v; want the entry's own text first", got, err)
		}
	}
}

// TestLengthSettingsWarn: truncation and padding draw a warning naming the field.
func TestLengthSettingsWarn(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	base := string(bpeJSON(t, byteVocab(nil), [][2]string{}, "", ""))
	file := strings.TrimSuffix(base, "}") + `,"truncation":{"max_length":8},"padding":{"strategy":"BatchLongest"}}`
	if _, err := Parse([]byte(file), "f.json"); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"field=truncation", "field=padding", "packing"} {
		if !strings.Contains(buf.String(), field) {
			t.Errorf("log %q lacks %q", buf.String(), field)
		}
	}
	buf.Reset()
	if _, err := Parse([]byte(strings.TrimSuffix(base, "}")+`,"truncation":null,"padding":null}`), "f.json"); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("null settings warned: %q", buf.String())
	}
}
