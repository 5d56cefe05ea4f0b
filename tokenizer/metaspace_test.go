package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

// metaspaceRef is the Metaspace pre-tokenizer the way the reference writes it
// (metaspace.rs pre_tokenize: replace, prepend, split MergedWithNext), built
// from the generic span helpers, for comparison with metaspacePre.split.
func metaspaceRef(m *metaspacePre, p piece) []piece {
	s := strings.ReplaceAll(p.s, " ", m.repl)
	if !strings.HasPrefix(s, m.repl) && (m.scheme == "always" || (m.scheme == "first" && p.first)) {
		s = m.repl + s
	}
	q := piece{s: s, first: p.first}
	var got []piece
	emit := func(x piece) { got = append(got, x) }
	if !m.doSplit {
		if s != "" {
			emit(q)
		}
		return got
	}
	spans := matchSpans(nil, s, func(s string, i int) (int, int) {
		j := strings.Index(s[i:], m.repl)
		if j < 0 {
			return -1, -1
		}
		return i + j, i + j + len(m.repl)
	})
	applyBehavior(q, spans, behMergedWithNext, emit)
	return got
}

func TestMetaspaceSplitMatchesReference(t *testing.T) {
	texts := []string{
		"", " ", "  ", "a", " a", "a ", "a  b", "Hello world", "▁a b", "a▁b", "▁", "▁▁ ",
		"  leading and trailing  ", "x y z w v u t s r q p o n m l k j i h g f e d c b a z y x w v u t s r",
		"naïve café", "tab\tand\nnewline here",
	}
	for _, repl := range []string{"▁", "_", " "} {
		for _, scheme := range []string{"always", "first", "never"} {
			for _, split := range []bool{true, false} {
				m := &metaspacePre{repl: repl, scheme: scheme, doSplit: split}
				for _, s := range texts {
					for _, first := range []bool{true, false} {
						p := piece{s: s, first: first}
						var got []piece
						m.split(p, func(x piece) { got = append(got, x) })
						if want := metaspaceRef(m, p); !slices.Equal(got, want) {
							t.Errorf("repl %q scheme %s split %v first %v text %q: got %+v, want %+v",
								repl, scheme, split, first, s, got, want)
						}
					}
				}
			}
		}
	}
}

func TestMetaspaceReplacedKeepsUnchangedText(t *testing.T) {
	m := &metaspacePre{repl: "▁", scheme: "never", doSplit: true}
	s := strings.Repeat("word", 10)
	if allocs := testing.AllocsPerRun(100, func() { _ = m.replaced(piece{s: s}) }); allocs != 0 {
		t.Errorf("replaced on text without spaces: %v allocations, want 0", allocs)
	}
	m.scheme = "always"
	s = "one two three four five six seven"
	if allocs := testing.AllocsPerRun(100, func() { _ = m.replaced(piece{s: s}) }); allocs != 1 {
		t.Errorf("replaced with spaces and a prefix: %v allocations, want 1", allocs)
	}
}

func FuzzMetaspaceSplit(f *testing.F) {
	f.Add("Hello  world ", "▁", uint8(0), true, true)
	f.Add("▁a b", " ", uint8(1), false, true)
	f.Fuzz(func(t *testing.T, s, repl string, scheme uint8, first, split bool) {
		if _, ok := validRune(repl); !ok {
			return
		}
		m := &metaspacePre{repl: repl, scheme: []string{"always", "first", "never"}[scheme%3], doSplit: split}
		p := piece{s: s, first: first}
		var got []piece
		m.split(p, func(x piece) { got = append(got, x) })
		if want := metaspaceRef(m, p); !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	})
}
