package tokenizer

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestForModel(t *testing.T) {
	cases := []struct {
		name                   string
		V, mask, bos, eos, pad int
	}{
		{"gpt2", 50258, 50257, 50256, 50256, 50257},
		{"bert-base-uncased", 30522, 103, 101, 102, 0},
		{"text8", 35, 4, 2, 3, 5},
		{"bytes", 259, 258, 256, 256, 257},
	}
	for _, c := range cases {
		tok, err := Load(c.name)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ForModel(tok)
		if err != nil {
			t.Fatal(err)
		}
		got := []int{v.V, v.Mask, v.BOS, v.EOS, v.PAD}
		want := []int{c.V, c.mask, c.bos, c.eos, c.pad}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: V, mask, bos, eos, pad = %v, want %v", c.name, got, want)
		}
	}
	g, _ := Load("gpt2")
	v, _ := ForModel(g)
	s, err := v.Decode([]int{15496, 50257, 50256, 995})
	if err != nil || s != "Hello[MASK]<|endoftext|> world" {
		t.Errorf("decode with mask = %q, %v", s, err)
	}
	if _, err := v.Decode([]int{50258}); err == nil {
		t.Error("decode accepted id 50258")
	}
}

func TestDecodeRejectsOutOfRange(t *testing.T) {
	for _, name := range BuiltinNames() {
		tok, _ := Load(name)
		for _, id := range []int{-1, tok.VocabSize(), 1 << 30} {
			if _, err := tok.Decode([]int{id}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
				t.Errorf("%s: Decode([%d]) err = %v", name, id, err)
			}
		}
	}
}

func TestText8AndBytes(t *testing.T) {
	t8 := Text8()
	ids := t8.Encode("Ab z!")
	if !reflect.DeepEqual(ids, []int{8, 9, 34, 33, 7}) {
		t.Errorf("text8 Encode = %v", ids)
	}
	if s, _ := t8.Decode(ids); s != "ab z[UNK]" {
		t.Errorf("text8 Decode = %q", s)
	}
	b := Bytes()
	in := "h\xffé"
	if s, _ := b.Decode(b.Encode(in)); s != strings.ToValidUTF8(in, "\uFFFD") {
		t.Errorf("bytes round trip = %q", s)
	}
}

func TestUnsupportedComponents(t *testing.T) {
	cases := []struct{ json, mention string }{
		{`{"model":{"type":"Mystery","vocab":[]}}`, "Mystery"},
		{`{"model":{"type":"BPE","vocab":{},"merges":[],"dropout":0.1}}`, "dropout"},
		{`{"normalizer":{"type":"MysteryNorm"},"model":{"type":"WordPiece","vocab":{"[UNK]":0},"unk_token":"[UNK]"},"pre_tokenizer":{"type":"BertPreTokenizer"},"decoder":{"type":"WordPiece"}}`, "MysteryNorm"},
		{`{"model":{"type":"WordPiece","vocab":{"[UNK]":0},"unk_token":"[UNK]"},"pre_tokenizer":{"type":"MysteryPre"},"decoder":{"type":"WordPiece"}}`, "MysteryPre"},
		{`{"model":{"type":"WordPiece","vocab":{"[UNK]":0},"unk_token":"[UNK]"},"pre_tokenizer":{"type":"BertPreTokenizer"},"decoder":{"type":"WordPiece"},"post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"Split"}]}}`, `post_processor.processors[1].type "Split"`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.json), "x.json")
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.mention) || !strings.Contains(err.Error(), "x.json") {
			t.Errorf("%s: err = %v", c.mention, err)
		}
	}
	if _, err := Load("llama"); err == nil || !strings.Contains(err.Error(), "gpt2") {
		t.Errorf("unknown name: err = %v", err)
	}
}

func TestBatchEncodeMatchesSerial(t *testing.T) {
	g, _ := Load("gpt2")
	texts := []string{"Hello world", "", "In the beginning God created the heaven and the earth.", "don't stop", "x  \n y"}
	for i := 0; i < 6; i++ {
		texts = append(texts, texts...)
	}
	par := BatchEncode(g, texts, 4)
	for i, s := range texts {
		if !reflect.DeepEqual(par[i], g.Encode(s)) {
			t.Fatalf("batch[%d] differs", i)
		}
	}
}

// WordPiece on invalid UTF-8: each bad byte reads as U+FFFD, which BERT's
// clean_text removes, so the bytes are dropped.
func TestWordPieceInvalidUTF8(t *testing.T) {
	b, _ := Load("bert-base-uncased")
	if got, want := b.Encode("ab\xffcd"), b.Encode("abcd"); !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(invalid) = %v, want %v", got, want)
	}
}

func FuzzGPT2RoundTrip(f *testing.F) {
	for _, s := range []string{"Hello, world!", "don't", "  \n\n x", "日本語", "\xff\xfe", "<|endoftext|>a", "é\u0301"} {
		f.Add(s)
	}
	g, _ := Load("gpt2")
	b, _ := Load("bert-base-uncased")
	f.Fuzz(func(t *testing.T, s string) {
		ids := g.Encode(s)
		back, err := g.Decode(ids)
		if err != nil || back != s {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", s, back, err)
		}
		for _, id := range b.Encode(s) { // BERT must not panic and must stay in range
			if id < 0 || id >= b.VocabSize() {
				t.Fatalf("bert id %d out of range for %q", id, s)
			}
		}
		if utf8.ValidString(s) {
			_, _ = b.Decode(b.Encode(s))
		}
	})
}

// Encode's results do not share its kept buffer: each call's ids survive the
// next call, short texts (the kept buffer) and long ones (a buffer of their
// own) alike, and equal a fresh instance's.
func TestEncodeResultsIndependent(t *testing.T) {
	g, _ := Load("gpt2")
	enc := g.(interface{ Clone() Tokenizer }).Clone()
	long := strings.Repeat("In the beginning God created the heaven and the earth. ", 2000) // > 64 Ki ids of room
	texts := []string{"Hello world", "don't stop", long, "", "x  \n y", long[:500]}
	got := make([][]int, len(texts))
	for i, s := range texts {
		got[i] = enc.Encode(s)
	}
	for i, s := range texts {
		fresh := g.(interface{ Clone() Tokenizer }).Clone()
		if want := fresh.Encode(s); !slices.Equal(got[i], want) {
			t.Fatalf("text %d: ids changed by later calls: %d ids, not those of a fresh encoder (%d)", i, len(got[i]), len(want))
		}
	}
}
