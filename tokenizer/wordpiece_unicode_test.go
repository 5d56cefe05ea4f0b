package tokenizer

import (
	"slices"
	"testing"
)

// TestHostileBertCharClasses pins the three causes of the 309 BERT documents
// that differed from Hugging Face (issue 22): the CJK range start, unassigned
// code points kept, and Unicode 8.0 character classes. Each expectation is
// what HF tokenizers 0.23.2 gives (testdata/golden/bert-base-uncased.ids.gz
// holds the full code point sweep).
func TestHostileBertCharClasses(t *testing.T) {
	cases := []struct {
		name string
		got  bool
		want bool
	}{
		{"U+2B820 is not in HF's CJK ranges", isCJK(0x2B820), false},
		{"U+2B920 is in HF's CJK ranges", isCJK(0x2B920), true},
		{"U+4E00 is CJK", isCJK(0x4E00), true},
		{"unassigned U+0378 is not a control", isBertControl(0x0378), false},
		{"unassigned U+E0080 is not a control", isBertControl(0xE0080), false},
		{"U+0000 is a control", isBertControl(0), true},
		{"U+200B (Cf) is a control", isBertControl(0x200B), true},
		{"private use U+E000 is a control", isBertControl(0xE000), true},
		{"tab is not a control", isBertControl('\t'), false},
		{"U+2E43 (punctuation since Unicode 9) is not punctuation", isBertPunct(0x2E43), false},
		{"U+2E3B (Unicode 8 Pd) is punctuation", isBertPunct(0x2E3B), true},
		{"'$' is ASCII punctuation", isBertPunct('$'), true},
		{"U+00B7 (Po) is punctuation", isBertPunct(0xB7), true},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: got %v", c.name, c.got)
		}
	}
	if got := stripMn("a\u0301\u1ac1b"); got != "a\u1ac1b" {
		t.Errorf("stripMn kept %q, want U+0301 dropped and U+1AC1 (a mark only since Unicode 14) kept", got)
	}
}

// TestBertEncodeUnicode8 checks whole encodings against ids from HF tokenizers.
func TestBertEncodeUnicode8(t *testing.T) {
	tok, err := Load("bert-base-uncased")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text string
		want []int
	}{
		{"x\u0378x", []int{100}},                 // unassigned: kept, the word is [UNK]
		{"x\u2e43x", []int{100}},                 // not punctuation in Unicode 8: one word
		{"x\u200bx", []int{22038}},               // Cf deleted: "xx"
		{"x\U0002B820x", []int{100}},             // not split out as CJK
		{"x\U0002B920x", []int{1060, 100, 1060}}, // split out as CJK
	}
	for _, c := range cases {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%+q) = %v, want %v", c.text, got, c.want)
		}
	}
}
