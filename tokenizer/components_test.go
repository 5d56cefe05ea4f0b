package tokenizer

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// familyShapes are small tokenizer.json files with the components of the hub's
// families (issue 22): each loads, and encodes and decodes as the reference
// would (the expected ids follow the reference's rules by hand).
type familyShape struct {
	name      string
	json      []byte
	text      string
	ids       []int
	decoded   string
	roundTrip bool // decode(encode(x)) == x for any x
}

func llama3Pre() string {
	return `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` +
		`"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},` +
		`"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`
}

func familyShapes(t testing.TB) []familyShape {
	bl := byteVocab(map[string]int{"Ġw": 256, "or": 257, "Ġwor": 258, "ld": 259, "Ġworld": 260, "12": 261})
	blModel := mustJSON(t, map[string]any{"type": "BPE", "vocab": bl, "merges": []string{"Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "1 2"}, "ignore_merges": true})
	sp := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6, "ab": 7, "▁ab": 8}
	for b := 0; b < 256; b++ {
		sp[byteFallbackName(byte(b))] = 9 + b
	}
	spModel := mustJSON(t, map[string]any{"type": "BPE", "vocab": sp, "merges": [][]string{{"▁", "a"}, {"a", "b"}, {"▁a", "b"}},
		"unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true})
	llama2 := `{"model":` + string(spModel) + `,"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},` +
		`{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},"pre_tokenizer":null,` +
		`"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},` +
		`"added_tokens":[{"id":1,"content":"<s>","special":true,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false}]}`
	metaspace := `{"model":` + string(spModel) + `,"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true},` +
		`"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}}`
	return []familyShape{
		{"llama3 shape", []byte(`{"model":` + string(blModel) + `,"pre_tokenizer":` + llama3Pre() + `,"decoder":{"type":"ByteLevel"}}`),
			" world 123", nil, " world 123", true},
		{"llama2 shape", []byte(llama2), "ab a<s>é", []int{8, 6, 1, 3, 9 + 0xC3, 9 + 0xA9}, "ab a<s> é", false},
		{"metaspace first", []byte(metaspace), "ab ab", []int{8, 8}, "ab ab", false},
	}
}

func byteFallbackName(b byte) string {
	const digits = "0123456789ABCDEF"
	return "<0x" + string([]byte{digits[b>>4], digits[b&15]}) + ">"
}

func TestFamilyShapes(t *testing.T) {
	for _, c := range familyShapes(t) {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Parse(c.json, c.name)
			if err != nil {
				t.Fatal(err)
			}
			got := tok.Encode(c.text)
			if c.ids == nil {
				// Llama 3's shape: the regex gives " world", " ", "123"; " world" is
				// a vocabulary entry (ignore_merges), "123" merges "1 2" then "3".
				c.ids = []int{260, byteIDOf(t, tok, ' '), 261, byteIDOf(t, tok, '3')}
			}
			if !slices.Equal(got, c.ids) {
				t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.ids)
			}
			back, err := tok.Decode(got)
			if err != nil || back != c.decoded {
				t.Errorf("Decode = %q, %v; want %q", back, err, c.decoded)
			}
		})
	}
}

func byteIDOf(t *testing.T, tok *HF, b byte) int {
	t.Helper()
	id, ok := tok.TokenID(string(byteToRune[b]))
	if !ok {
		t.Fatalf("no token for byte %q", b)
	}
	return id
}

// TestSplitBehaviors checks every SplitDelimiterBehavior on the reference's own
// example (tokenizers/src/tokenizer/normalizer.rs, split): "the-final--countdown".
func TestSplitBehaviors(t *testing.T) {
	cases := map[string]string{
		"Removed":            "the|final|countdown",
		"Isolated":           "the|-|final|-|-|countdown",
		"MergedWithPrevious": "the-|final-|-|countdown",
		"MergedWithNext":     "the|-final|-|-countdown",
		"Contiguous":         "the|-|final|--|countdown",
	}
	for beh, want := range cases {
		for _, invert := range []bool{false, true} {
			raw := `{"type":"Split","pattern":{"String":"-"},"behavior":"` + beh + `","invert":` + map[bool]string{false: "false", true: "true"}[invert] + `}`
			pre, err := parsePreTokenizer(json.RawMessage(raw), "pre_tokenizer", 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			pre[0].split(piece{s: "the-final--countdown"}, func(p piece) { got = append(got, p.s) })
			if !invert && strings.Join(got, "|") != want {
				t.Errorf("%s: %q, want %q", beh, strings.Join(got, "|"), want)
			}
			if invert && beh == "Removed" && strings.Join(got, "|") != "-|-|-" {
				t.Errorf("%s inverted: %q", beh, strings.Join(got, "|"))
			}
		}
	}
}

// TestDecoders checks each decoder on the reference's rules.
func TestDecoders(t *testing.T) {
	cases := []struct {
		raw    string
		tokens []string
		want   string
	}{
		{`{"type":"ByteFallback"}`, []string{"a", "<0xC3>", "<0xA9>", "b", "<0xFF>", "<0xC3>"}, "aéb\uFFFD\uFFFD"},
		{`{"type":"Strip","content":" ","start":1,"stop":1}`, []string{"  a  "}, " a "},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"}`, []string{"▁a▁", "▁b"}, "a b"},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"never"}`, []string{"▁a", "▁b"}, " a b"},
		{`{"type":"BPEDecoder","suffix":"</w>"}`, []string{"a</w>", "b</w>"}, "a b"},
		{`{"type":"WordPiece","prefix":"##","cleanup":true}`, []string{"a", "##b", ",", "c"}, "ab, c"},
		{`{"type":"Replace","pattern":{"String":"_"},"content":" "}`, []string{"a_b"}, "a b"},
	}
	for _, c := range cases {
		ds, err := parseDecoder(json.RawMessage(c.raw), "decoder", 0)
		if err != nil {
			t.Fatal(err)
		}
		toks := slices.Clone(c.tokens)
		for _, d := range ds {
			toks = d.decodeChain(toks)
		}
		if got := strings.Join(toks, ""); got != c.want {
			t.Errorf("%s: %q, want %q", c.raw, got, c.want)
		}
	}
}

// TestNormalizers checks the normalizers this package adds.
func TestNormalizers(t *testing.T) {
	cases := []struct{ raw, in, want string }{
		{`{"type":"NFC"}`, "e\u0301", "é"},
		{`{"type":"NFKD"}`, "ﬁ", "fi"},
		{`{"type":"Lowercase"}`, "AİB", "ai\u0307b"},
		{`{"type":"Strip","strip_left":true,"strip_right":false}`, "  a  ", "a  "},
		{`{"type":"Prepend","prepend":"▁"}`, "a", "▁a"},
		{`{"type":"Prepend","prepend":"▁"}`, "", ""},
		{`{"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}`, "a    b  c", "a b c"},
		{`{"type":"Sequence","normalizers":[{"type":"Lowercase"},{"type":"Replace","pattern":{"String":"a"},"content":"b"}]}`, "AAa", "bbb"},
	}
	for _, c := range cases {
		n, err := parseNormalizer(json.RawMessage(c.raw), "normalizer", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.normalize(c.in); got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.raw, c.in, got, c.want)
		}
	}
}

// TestAddedTokenStripping checks lstrip, rstrip and single_word.
func TestAddedTokenStripping(t *testing.T) {
	added := `[{"id":256,"content":"<m>","special":true,"single_word":false,"lstrip":true,"rstrip":true,"normalized":false},` +
		`{"id":257,"content":"cat","special":false,"single_word":true,"lstrip":false,"rstrip":false,"normalized":false}]`
	tok, err := Parse(bpeJSON(t, byteVocab(nil), []string{}, added, ""), "f.json")
	if err != nil {
		t.Fatal(err)
	}
	// "<m>" takes the spaces around it; "cat" inside "cats" is not a word of
	// its own, so it stays text.
	got := tok.Encode("a  <m>  b cats cat")
	b := func(c byte) int { return byteIDOf(t, tok, c) }
	want := []int{b('a'), 256, b('b'), b(' '), b('c'), b('a'), b('t'), b('s'), b(' '), 257}
	if !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
}

// TestPostProcessors: RobertaProcessing and a Sequence of processors add their
// tokens around the ids, each wrapping what the one before gave.
func TestPostProcessors(t *testing.T) {
	added := `[{"id":256,"content":"<s>","special":true,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false},` +
		`{"id":257,"content":"</s>","special":true,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false}]`
	roberta := `{"type":"RobertaProcessing","sep":["</s>",257],"cls":["<s>",256],"trim_offsets":true,"add_prefix_space":false}`
	tmpl := `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"</s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],` +
		`"special_tokens":{"</s>":{"id":"</s>","ids":[257],"tokens":["</s>"]}}}`
	for _, c := range []struct {
		post string
		want []int
	}{
		{roberta, []int{256, 'x' - 33, 257}},
		{`{"type":"Sequence","processors":[{"type":"ByteLevel"},` + roberta + `,` + tmpl + `]}`, []int{257, 256, 'x' - 33, 257}},
	} {
		tok, err := Parse(bpeJSON(t, byteVocab(nil), []string{}, added, c.post), "f.json")
		if err != nil {
			t.Fatal(err)
		}
		c.want[slices.Index(c.want, 'x'-33)] = byteIDOf(t, tok, 'x')
		if got := tok.EncodeSpecial("x"); !slices.Equal(got, c.want) {
			t.Errorf("%s: EncodeSpecial = %v, want %v", c.post, got, c.want)
		}
	}
}
