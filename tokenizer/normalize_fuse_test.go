package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestFusedPrependReplace checks that the fused Prepend+Replace normalizer
// (fuseNormalizers) gives the text of the two applied one after the other.
func TestFusedPrependReplace(t *testing.T) {
	cases := []struct {
		name, pre, old, new string
		fused               bool
	}{
		{"llama2", "▁", " ", "▁", true},
		{"prefix holds the pattern", "a ", " ", "__", true},
		{"multibyte pattern", ">", "▁", " ", true},
		{"replace removes", "x", "y", "", true},
		{"two-character pattern not fused", "a", "ab", "c", false},
		{"empty pattern not fused", "a", "", "c", false},
		{"invalid UTF-8 prefix not fused", "\xe2", "▁", "x", false},
	}
	texts := []string{"", "\x96\x81", " ", "  ", "hello world", " lead", "trail ", "▁a b▁", "a  b\tc", "yyy", "abab", "日本 語", "\xff \xfe"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq := []normalizer{prependNorm(c.pre), literalReplace{old: c.old, new: c.new}}
			n := sequenceNormalizer(seq)
			if _, ok := n.(prependReplace); ok != c.fused {
				t.Fatalf("fused = %v, want %v", ok, c.fused)
			}
			for _, s := range texts {
				want := s
				if want != "" {
					want = c.pre + want
				}
				want = strings.ReplaceAll(want, c.old, c.new)
				if got := n.normalize(s); got != want {
					t.Errorf("normalize(%q) = %q, want %q", s, got, want)
				}
			}
		})
	}
}

// TestFuseNormalizersKeepsOthers checks that fusing leaves every other
// normalizer in its place and order.
func TestFuseNormalizersKeepsOthers(t *testing.T) {
	low := normalizerFunc(lowercaseRust)
	seq := []normalizer{low, prependNorm("▁"), literalReplace{old: " ", new: "▁"}, prependNorm("x")}
	got := fuseNormalizers(seq)
	if len(got) != 3 {
		t.Fatalf("len = %d, want 3", len(got))
	}
	if _, ok := got[1].(prependReplace); !ok {
		t.Errorf("got[1] = %T, want prependReplace", got[1])
	}
	if p, ok := got[2].(prependNorm); !ok || p != "x" {
		t.Errorf("got[2] = %#v, want prependNorm(\"x\")", got[2])
	}
	if out := sequenceNormalizer(seq).normalize("A b"); out != "x▁a▁b" {
		t.Errorf("sequence(\"A b\") = %q, want %q", out, "x▁a▁b")
	}
}

// TestPrependReplaceAllocs checks the fused normalizer builds one string.
func TestPrependReplaceAllocs(t *testing.T) {
	n := sequenceNormalizer([]normalizer{prependNorm("▁"), literalReplace{old: " ", new: "▁"}})
	text := strings.Repeat("the quick brown fox ", 50)
	if a := testing.AllocsPerRun(20, func() { n.normalize(text) }); a != 1 {
		t.Errorf("allocations per text = %v, want 1", a)
	}
}

// FuzzPrependReplace: the fused normalizer equals Prepend then Replace for any
// prefix, one-character pattern, content and text.
func FuzzPrependReplace(f *testing.F) {
	f.Add("▁", " ", "▁", "hello  world ")
	f.Add("a ", " ", "", " x")
	f.Add("\xe2", "▁", "\x96\x81", "\x96\x81▁")
	f.Fuzz(func(t *testing.T, pre, old, content, s string) {
		seq := []normalizer{prependNorm(pre), literalReplace{old: old, new: content}}
		fused := fuseNormalizers(seq)
		if _, one := validRune(old); !one || !utf8.ValidString(pre) {
			if len(fused) != 2 {
				t.Fatalf("pattern %q, prefix %q: fused, want not", old, pre)
			}
			return
		}
		if len(fused) != 1 {
			t.Fatalf("pattern %q: %d normalizers, want 1", old, len(fused))
		}
		want := seq[1].normalize(seq[0].normalize(s))
		if got := fused[0].normalize(s); got != want {
			t.Fatalf("pre %q old %q new %q: normalize(%q) = %q, want %q", pre, old, content, s, got, want)
		}
	})
}
