package tokenizer

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// unigramJSON is a small Unigram tokenizer.json: pieces with scores, unk 0.
func unigramJSON(t testing.TB, pieces [][2]any, byteFallback bool, extra string) []byte {
	t.Helper()
	v, err := json.Marshal(pieces)
	if err != nil {
		t.Fatal(err)
	}
	bf := "false"
	if byteFallback {
		bf = "true"
	}
	return []byte(`{"model":{"type":"Unigram","unk_id":0,"vocab":` + string(v) + `,"byte_fallback":` + bf + `}` + extra + `}`)
}

func TestUnigramViterbi(t *testing.T) {
	pieces := [][2]any{{"<unk>", 0.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -1.5}, {"abc", -4.0}, {"c", -2.0}, {"é", -1.0}}
	bytes := slices.Clone(pieces)
	for _, b := range []string{"<0xE2>", "<0x98>", "<0x83>"} {
		bytes = append(bytes, [2]any{b, -1.0})
	}
	cases := []struct {
		name   string
		pieces [][2]any
		bf     bool
		in     string
		want   []int
	}{
		{"best sum", pieces, false, "abc", []int{3, 5}},    // ab+c = -3.5 beats abc = -4
		{"single", pieces, false, "a", []int{1}},           // one piece
		{"unk fused", pieces, false, "x☃yab", []int{0, 3}}, // three unknown characters become one unk
		{"unk between", pieces, false, "axb", []int{1, 0, 2}},
		{"byte fallback", bytes, true, "☃a", []int{7, 8, 9, 1}},
		{"byte fallback missing byte", bytes, true, "xa", []int{0, 1}}, // <0x78> absent: unk
		{"multibyte piece", pieces, false, "éa", []int{6, 1}},
		{"empty", pieces, false, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := Parse(unigramJSON(t, c.pieces, c.bf, ""), "u.json")
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode(c.in); !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestWordLevel(t *testing.T) {
	file := `{"model":{"type":"WordLevel","vocab":{"<unk>":0,"hello":1,"world":2},"unk_token":"<unk>"},
		"pre_tokenizer":{"type":"WhitespaceSplit"}}`
	tok, err := Parse([]byte(file), "w.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]int{"hello world": {1, 2}, "hello there": {1, 0}, "": nil, "  world  ": {2}}
	for in, want := range cases {
		if got := tok.Encode(in); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", in, got, want)
		}
	}
	if s, err := tok.Decode([]int{1, 0, 2}); err != nil || s != "hello <unk> world" {
		t.Errorf("Decode = %q, %v (no decoder: tokens joined by spaces)", s, err)
	}
}

func TestUnicodeScriptsSplit(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		// The reference's own tests (pre_tokenizers/unicode_scripts/pre_tokenizer.rs).
		{"どこで生れ。Yes", []string{"どこで生れ", "。", "Yes"}},
		{"Apples are りんご 林檎", []string{"Apples are ", "りんご 林檎"}},
		{"hello, world", []string{"hello", ", ", "world"}},
		{"  lead", []string{"lead"}}, // leading Any characters belong to no piece
		{"ab12cd", []string{"ab", "12", "cd"}},
		{"", nil},
		{"   ", nil},
	}
	for _, c := range cases {
		var got []string
		unicodeScriptsSplit(piece{s: c.in, first: true}, func(p piece) { got = append(got, p.s) })
		if !slices.Equal(got, c.want) {
			t.Errorf("UnicodeScripts(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNextGrapheme(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"ab", []string{"a", "b"}},
		{"e\u0301x", []string{"e\u0301", "x"}},
		{"\r\n\n", []string{"\r\n", "\n"}},
		{"\t\u0301", []string{"\t", "\u0301"}},                       // GB4: nothing joins a control
		{"\u0600x", []string{"\u0600x"}},                             // GB9b: prepend
		{"👨\u200d👩", []string{"👨\u200d👩"}},                           // GB11
		{"©\u200d©", []string{"©\u200d©"}},                           // GB11 with two-byte pictographs
		{"a\u200d©", []string{"a\u200d", "©"}},                       // ZWJ after a non-pictograph
		{"🇫🇷🇯", []string{"🇫🇷", "🇯"}},                                 // GB12/13
		{"\u1100\u1161\u11a8x", []string{"\u1100\u1161\u11a8", "x"}}, // GB6-8: Hangul L V T
		{"\u0915\u093f", []string{"\u0915\u093f"}},                   // GB9a: spacing mark
	}
	for _, c := range cases {
		var got []string
		for i := 0; i < len(c.in); {
			j := nextGrapheme(c.in, i)
			got = append(got, c.in[i:j])
			i = j
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("graphemes(%+q) = %+q, want %+q", c.in, got, c.want)
		}
	}
}

func TestFixedLengthAndCTC(t *testing.T) {
	var got []string
	(&fixedLengthPre{length: 2}).split(piece{s: "abcdé f"}, func(p piece) { got = append(got, p.s) })
	if want := []string{"ab", "cd", "é ", "f"}; !slices.Equal(got, want) {
		t.Errorf("FixedLength(2) = %q, want %q", got, want)
	}
	// As the reference decodes [ab ab <pad> | cde cde Ġ <unk>] (checked with HF tokenizers 0.23.2).
	ctc := ctcDecoder{pad: "<pad>", delimiter: "|", cleanup: true}
	if got := strings.Join(ctc.decode([]string{"ab", "ab", "<pad>", "|", "cde", "cde", "Ġ", "<unk>"}), ""); got != "ab cdeĠ<unk>" {
		t.Errorf("CTC = %q", got)
	}
	if _, err := Parse([]byte(`{"model":{"type":"WordLevel","vocab":{"<unk>":0}},"pre_tokenizer":{"type":"FixedLength","length":0}}`), "f.json"); err == nil || !strings.Contains(err.Error(), "pre_tokenizer.length") {
		t.Errorf("FixedLength 0: err = %v", err)
	}
}

// albertCharsmap is the decoded precompiled_charsmap of the committed ALBERT file.
func albertCharsmap(t testing.TB) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "families", "albert.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Normalizer struct {
			Normalizers []struct {
				Charsmap string `json:"precompiled_charsmap"`
			} `json:"normalizers"`
		} `json:"normalizer"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	for _, n := range file.Normalizer.Normalizers {
		if n.Charsmap != "" {
			b, err := base64.StdEncoding.DecodeString(n.Charsmap)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("no charsmap in albert.json.gz")
	return nil
}

func TestPrecompiledNormalize(t *testing.T) {
	p, err := newPrecompiled(albertCharsmap(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"plain ascii": "plain ascii",
		"ﬁ ＡＢ①":       "fi AB1", // NFKC
		"e\u0301":     "\u00e9", // a cluster composed whole
		"a\u200bb":    "a b",    // nmt: a zero width space is a space
	}
	for in, want := range cases {
		if got := p.normalize(in); got != want {
			t.Errorf("normalize(%+q) = %+q, want %+q", in, got, want)
		}
	}
}

// The shortcut for text normalize keeps (only ASCII it maps to itself) gives
// what the full walk gives, on the real charsmap.
func TestPrecompiledShortcut(t *testing.T) {
	p, err := newPrecompiled(albertCharsmap(t))
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, s := range []string{"", "plain ascii", "Tab\there", "cr\r\nlf", "a\rb", "nul\x00", "del\x7f", "~`!@#$%^&*()_+{}|:<>?", "é", "x\u200by", "  two  spaces  "} {
		if p.unchanged(s) {
			kept++
		}
		if got, want := p.normalize(s), p.normalizeAll(s); got != want {
			t.Errorf("normalize(%+q) = %+q, without the shortcut %+q", s, got, want)
		}
	}
	if kept == 0 {
		t.Error("the shortcut never applied")
	}
	for c := 0; c < 128; c++ {
		s := "a" + string(rune(c)) + "b"
		if got, want := p.normalize(s), p.normalizeAll(s); got != want {
			t.Errorf("normalize(%+q) = %+q, without the shortcut %+q", s, got, want)
		}
	}
}

func TestLowercaseShortcut(t *testing.T) {
	for _, s := range []string{"", "already lower", "Upper", "ZED", "İstanbul", "é", "ΣΑΣ", "mixed Ünïcode", "\x00\x7f"} {
		if got, want := lowercaseRust(s), lowercaseAll(s); got != want {
			t.Errorf("lowercaseRust(%+q) = %+q, without the shortcut %+q", s, got, want)
		}
	}
}

func TestPrecompiledHostile(t *testing.T) {
	real := albertCharsmap(t)
	le := func(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"three bytes", []byte{1, 2, 3}, "too short"},
		{"zero trie", le(0), "empty trie"},
		{"trie past the end", append(le(1<<30), 0, 0, 0, 0), "only 4 bytes follow"},
		{"over the cap", make([]byte, MaxCharsmapBytes+1), "limit"},
		{"long replacement", append(append(le(4), 0, 0, 0, 0), strings.Repeat("x", MaxCharsmapReplacement+1)...), "over the 256-byte limit"},
	}
	for _, c := range cases {
		if _, err := newPrecompiled(c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// A trie whose offsets point outside it, and values past the blob, must not panic.
	for _, data := range [][]byte{
		append(le(4), 0xFF, 0xFF, 0xFF, 0xFF),
		append(le(8), 0x00, 0xFF, 0xFF, 0xFF, 0x61, 0x01, 0x00, 0x00),
		append(le(uint32(len(real)-4-64)), real[4:len(real)-64]...), // the blob cut short
	} {
		p, err := newPrecompiled(data)
		if err != nil {
			continue
		}
		if out := p.normalize("abc é ﬁ \r\n 👨\u200d👩"); !utf8.ValidString(out) {
			t.Errorf("invalid UTF-8 out of a hostile charsmap: %q", out)
		}
	}
	// Through the file: the base64 size is checked before decoding.
	big := strings.Repeat("A", (MaxCharsmapBytes/3+2)*4)
	file := `{"model":{"type":"WordLevel","vocab":{"<unk>":0}},"normalizer":{"type":"Precompiled","precompiled_charsmap":"` + big + `"}}`
	if _, err := Parse([]byte(file), "p.json"); err == nil || !strings.Contains(err.Error(), "normalizer.precompiled_charsmap") {
		t.Errorf("oversized charsmap: err = %v", err)
	}
	if _, err := Parse([]byte(`{"model":{"type":"WordLevel","vocab":{"<unk>":0}},"normalizer":{"type":"Precompiled","precompiled_charsmap":"!!"}}`), "p.json"); err == nil || errors.Is(err, ErrUnsupported) {
		t.Errorf("bad base64: err = %v", err)
	}
}

// tinyCharsmap is a hand-made charsmap mapping "a" to "x": a darts-clone
// double array of 98 units (the root's offset 1 leads to unit 1^'a' = 96,
// labelled 'a' with a leaf whose value, in unit 96^1 = 97, is blob offset 0).
func tinyCharsmap() []byte {
	units := make([]uint32, 98)
	units[0] = 1 << 10
	units[96] = 'a' | 1<<8 | 1<<10
	units[97] = 0
	out := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		out = binary.LittleEndian.AppendUint32(out, u)
	}
	return append(out, 'x', 0)
}

func TestTinyCharsmap(t *testing.T) {
	p, err := newPrecompiled(tinyCharsmap())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.normalize("bananá"); got != "bxnxnx" {
		t.Errorf("normalize = %q, want bxnxnx (a + mark is one cluster, replaced whole by its prefix a's x)", got)
	}
}

// FuzzPrecompiled parses arbitrary charsmaps and normalizes text with those
// that parse: no panic, and valid UTF-8 in gives valid UTF-8 out.
func FuzzPrecompiled(f *testing.F) {
	// Small seeds only: the real 240 KB charsmap makes every mutation slow
	// (TestPrecompiledHostile runs it whole).
	le := func(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
	f.Add(tinyCharsmap(), "Hello ﬁ a\u0301 \r\n ＡＢ 👨\u200d👩")
	f.Add(append(le(4), 0xFF, 0xFF, 0xFF, 0xFF), "abc")
	f.Add(append(le(8), 0x00, 0x04, 0x00, 0x00, 0x61, 0x01, 0x00, 0x00, 'x', 0), "a\u0301a")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		p, err := newPrecompiled(data)
		if err != nil {
			return
		}
		out := p.normalize(text)
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("normalize(%q) = %q: invalid UTF-8", text, out)
		}
		if all := p.normalizeAll(text); out != all {
			t.Fatalf("normalize(%q) = %q, but without its shortcut %q", text, out, all)
		}
	})
}

// FuzzLoadUnigram loads mutations of small Unigram and WordLevel files with
// the new components (Precompiled, UnicodeScripts, FixedLength, CTC): no
// panic, and a file that loads encodes to ids inside its vocabulary that
// decode (checkLoaded).
func FuzzLoadUnigram(f *testing.F) {
	pieces := [][2]any{{"<unk>", 0.0}, {"▁a", -1.0}, {"b", -2.0}, {"<0x41>", -3.0}, {"▁", -1.0}}
	real := base64.StdEncoding.EncodeToString(tinyCharsmap())
	extras := []string{
		``,
		`,"normalizer":{"type":"Precompiled","precompiled_charsmap":"` + real + `"}`,
		`,"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"UnicodeScripts"},{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}]}`,
		`,"pre_tokenizer":{"type":"FixedLength","length":3},"decoder":{"type":"CTC","pad_token":"<unk>","word_delimiter_token":"▁","cleanup":true}`,
		`,"normalizer":{"type":"ByteLevel"},"added_tokens":[{"id":5,"content":"<x>","special":true,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false}]`,
	}
	for i, e := range extras {
		f.Add(unigramJSON(f, pieces, i%2 == 0, e), "a b A ☃ <x> é 12")
	}
	f.Add([]byte(`{"model":{"type":"WordLevel","vocab":{"<unk>":0,"a":1},"unk_token":"<unk>"},"pre_tokenizer":{"type":"UnicodeScripts"}}`), "a b")
	f.Fuzz(func(t *testing.T, data []byte, text string) {
		if len(text) > 512 {
			text = text[:512]
		}
		tok, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		checkLoaded(t, tok, text)
	})
}

// TestCollapseSpaces checks the " {2,}" fast path against the regex matcher.
func TestCollapseSpaces(t *testing.T) {
	re, err := compileRegex(" {2,}")
	if err != nil {
		t.Fatal(err)
	}
	m := &matcher{re: re}
	for _, s := range []string{"", " ", "  ", "a  b", "a b", "   a   b    ", "x\t  \ty", "é  ", "  é", "a     "} {
		if got, want := collapseSpaces(s), m.replaceAll(s, " "); got != want {
			t.Errorf("collapseSpaces(%q) = %q, regex gives %q", s, got, want)
		}
	}
}
