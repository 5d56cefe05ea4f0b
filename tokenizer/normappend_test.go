package tokenizer

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// lowercaseRef is Lowercase as it was written before appendLowercase: a
// strings.Builder over the text's runes.
func lowercaseRef(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if r == 0x130 {
			sb.WriteString("i\u0307")
			continue
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return sb.String()
}

// precompiledRef is the Precompiled walk as it was written before appendAll:
// a strings.Builder, each replacement read from the blob per character.
func precompiledRef(p *precompiled, s string) string {
	rep := func(chunk string) (string, bool) {
		v, ok := p.firstMatch(chunk)
		if !ok || int(v) > len(p.blob) {
			return "", false
		}
		end := int(v)
		for end < len(p.blob) && p.blob[end] != 0 {
			end++
		}
		if b := p.blob[v:end]; utf8.Valid(b) {
			return string(b), true
		}
		return "", false
	}
	var sb strings.Builder
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && c != '\r' && (i+1 == len(s) || s[i+1] < utf8.RuneSelf) {
			if r, ok := rep(string(rune(c))); ok && c != 0 {
				sb.WriteString(r)
			} else {
				sb.WriteByte(c)
			}
			i++
			continue
		}
		j := nextGrapheme(s, i)
		g := s[i:j]
		if r, ok := rep(g); ok && len(g) < 6 {
			sb.WriteString(r)
			i = j
			continue
		}
		for k := 0; k < len(g); {
			_, w := utf8.DecodeRuneInString(g[k:])
			if r, ok := rep(g[k : k+w]); ok {
				sb.WriteString(r)
			} else {
				sb.WriteString(g[k : k+w])
			}
			k += w
		}
		i = j
	}
	return sb.String()
}

var appendTexts = []string{
	"", "a", "plain lower text", "Upper Case  Two  Spaces", "  lead and trail  ", "``quoted''",
	"İstanbul ΣΑΣ Ünïcode", "ﬁ ＡＢ a\u0301 👨\u200d👩", "cr\r\nlf\rx", "\xff\xfe invalid \xc3", "\x00nul\x7f",
	strings.Repeat("The quick  brown fox. ", 40),
}

// Each appendNormalizer appends to dst what its reference gives, reports no
// change exactly when the reference keeps the text, and keeps dst's bytes.
func TestAppendNormalizersMatchReference(t *testing.T) {
	p, err := newPrecompiled(albertCharsmap(t))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(" {2,}")
	cases := []struct {
		name string
		n    appendNormalizer
		ref  func(string) string
	}{
		{"Lowercase", lowercaseNorm{}, lowercaseRef},
		{"collapse", collapseNorm{}, func(s string) string { return re.ReplaceAllString(s, " ") }},
		{"Replace", literalReplace{old: "``", new: `"`}, func(s string) string { return strings.ReplaceAll(s, "``", `"`) }},
		{"Replace longer", literalReplace{old: " ", new: "▁▁"}, func(s string) string { return strings.ReplaceAll(s, " ", "▁▁") }},
		{"Prepend", prependNorm("▁"), func(s string) string {
			if s == "" {
				return s
			}
			return "▁" + s
		}},
		{"Prepend+Replace", prependReplace{pre: "▁", r: literalReplace{old: " ", new: "▁"}}, func(s string) string {
			if s == "" {
				return s
			}
			return "▁" + strings.ReplaceAll(s, " ", "▁")
		}},
		{"Precompiled", p, func(s string) string { return precompiledRef(p, s) }},
		{"ByteLevel", byteLevelNorm{}, byteLevelString},
	}
	for _, c := range cases {
		for _, s := range appendTexts {
			want := c.ref(s)
			dst := []byte("keep")
			out, changed := c.n.appendNormalize(dst, s)
			switch {
			case !changed && want != s:
				t.Errorf("%s: appendNormalize(%+q) reports no change, want %+q", c.name, s, want)
			case !changed && string(out) != "keep":
				t.Errorf("%s: appendNormalize(%+q) unchanged but dst became %+q", c.name, s, out)
			case changed && string(out) != "keep"+want:
				t.Errorf("%s: appendNormalize(%+q) = %+q, want %+q", c.name, s, out, "keep"+want)
			}
			if got := c.n.normalize(s); got != want {
				t.Errorf("%s: normalize(%+q) = %+q, want %+q", c.name, s, got, want)
			}
		}
	}
}

// stripNorm is the Strip normalizer, which returns a part of its input: the
// scratch must not write over it.
var stripNorm = normalizerFunc(func(s string) string { return stripSpaces(s, true, true) })

// albertSteps is the ALBERT family's normalizers with a Strip and an Nmt
// (not appendNormalizers) mixed in.
func albertSteps(t testing.TB) []normalizer {
	p, err := newPrecompiled(albertCharsmap(t))
	if err != nil {
		t.Fatal(err)
	}
	return []normalizer{
		literalReplace{old: "``", new: `"`}, stripNorm, literalReplace{old: "''", new: `"`},
		unicodeNormalizer("NFKD"), normalizerFunc(stripCombiningMarks), lowercaseNorm{}, p,
		normalizerFunc(nmt), collapseNorm{}, stripNorm, prependNorm("▁"),
		&bertNormalizer{clean: true, chinese: true, stripAccents: true, lowercase: true}, byteLevelNorm{},
	}
}

// normScratch.run gives what the steps give one after the other, text after
// text on the same buffers, and its result is right until the next call.
func TestNormScratchMatchesSequence(t *testing.T) {
	steps := albertSteps(t)
	var ns normScratch
	for round := 0; round < 2; round++ {
		for _, s := range appendTexts {
			want := seqNorm(steps).normalize(s)
			if got := ns.run(steps, s); got != want {
				t.Errorf("run(%+q) = %+q, want %+q", s, got, want)
			}
		}
	}
	// Every prefix of the steps, so that results end in either buffer.
	for k := range steps {
		for _, s := range appendTexts {
			if got, want := ns.run(steps[:k], s), seqNorm(steps[:k]).normalize(s); got != want {
				t.Errorf("%d steps: run(%+q) = %+q, want %+q", k, s, got, want)
			}
		}
	}
}

// A document costs no allocation once the buffers have grown.
func TestNormScratchSteadyStateAllocs(t *testing.T) {
	p, err := newPrecompiled(albertCharsmap(t))
	if err != nil {
		t.Fatal(err)
	}
	steps := []normalizer{literalReplace{old: "``", new: `"`}, lowercaseNorm{}, p, collapseNorm{}, prependReplace{pre: "▁", r: literalReplace{old: " ", new: "▁"}}}
	docs := []string{strings.Repeat("The Quick  Brown Fox, ``Jumps''.\n", 30), "Short One.", strings.Repeat("Another Doc  ", 50)}
	var ns normScratch
	for _, d := range docs {
		ns.run(steps, d)
	}
	if a := testing.AllocsPerRun(20, func() {
		for _, d := range docs {
			ns.run(steps, d)
		}
	}); a != 0 {
		t.Errorf("allocations per round of documents = %v, want 0", a)
	}
}

// A huge document's buffers are not kept past the next one.
func TestNormScratchDropsHugeBuffers(t *testing.T) {
	var ns normScratch
	steps := []normalizer{lowercaseNorm{}}
	ns.run(steps, strings.Repeat("A", maxNormScratch+1))
	if got := ns.run(steps, "Small"); got != "small" {
		t.Fatalf("run = %q", got)
	}
	for i, b := range ns.buf {
		if cap(b) > maxNormScratch {
			t.Errorf("buffer %d keeps %d bytes after a small document", i, cap(b))
		}
	}
}

// splitBuf on one reused buffer emits what split emits, and allocates
// nothing once the buffer has grown.
func TestMetaspaceSplitBufReuse(t *testing.T) {
	m := &metaspacePre{repl: "▁", scheme: "always", doSplit: true}
	var buf []byte
	for round := 0; round < 2; round++ {
		for _, s := range appendTexts {
			var got, want []piece
			m.splitBuf(&buf, piece{s: s, first: true}, func(p piece) { got = append(got, p) })
			m.split(piece{s: s, first: true}, func(p piece) { want = append(want, p) })
			if len(got) != len(want) {
				t.Fatalf("splitBuf(%+q) = %+v, split gives %+v", s, got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("splitBuf(%+q) piece %d = %+v, split gives %+v", s, i, got[i], want[i])
				}
			}
		}
	}
	doc := strings.Repeat("some words with spaces ", 100)
	n := 0
	if a := testing.AllocsPerRun(20, func() { m.splitBuf(&buf, piece{s: doc}, func(piece) { n++ }) }); a != 0 {
		t.Errorf("allocations per document = %v, want 0", a)
	}
}

func TestIdsRoom(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 16}, {100, 116}, {2 << 20, 2<<20 + 16}, {4 << 20, 2<<20 + 1<<20 + 16},
	} {
		if got := idsRoom(c.n); got != c.want {
			t.Errorf("idsRoom(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// FuzzNormScratch: any choice of the ALBERT-like steps, run on the scratch
// twice (the second time on used buffers), equals the steps one after the
// other; Precompiled and Lowercase equal their references.
func FuzzNormScratch(f *testing.F) {
	for _, s := range appendTexts {
		f.Add(s, "Prior  Text", uint16(0xFFFF))
	}
	f.Add("İ\u0301  ``x''", "", uint16(0x155))
	steps := albertSteps(f)
	p := steps[6].(*precompiled)
	var ns normScratch
	f.Fuzz(func(t *testing.T, s, prior string, mask uint16) {
		var chosen []normalizer
		for i, n := range steps {
			if mask>>i&1 == 1 {
				chosen = append(chosen, n)
			}
		}
		want := seqNorm(chosen).normalize(s)
		ns.run(chosen, prior)
		if got := ns.run(chosen, s); got != want {
			t.Fatalf("mask %#x: run(%+q) = %+q, want %+q", mask, s, got, want)
		}
		if got, want := p.normalize(s), precompiledRef(p, s); got != want {
			t.Fatalf("Precompiled(%+q) = %+q, want %+q", s, got, want)
		}
		if got, want := lowercaseRust(s), lowercaseRef(s); got != want {
			t.Fatalf("Lowercase(%+q) = %+q, want %+q", s, got, want)
		}
	})
}

// bertRef is BertNormalizer's full walk (normalize without the ASCII pass).
func bertRef(n *bertNormalizer, s string) string {
	return n.normalize(s)
}

// The ASCII pass of BertNormalizer gives the full walk's text, for every
// combination of its options, and reports no change exactly when there is
// none.
func TestBertAppendMatchesNormalize(t *testing.T) {
	texts := append([]string{"Tab\tNew\nCR\rVT\vFF\fDEL\x7fNUL\x00 end", "all lower, no controls", "中文 mixed Ünï"}, appendTexts...)
	for flags := 0; flags < 16; flags++ {
		n := &bertNormalizer{clean: flags&1 != 0, chinese: flags&2 != 0, stripAccents: flags&4 != 0, lowercase: flags&8 != 0}
		for _, s := range texts {
			want := bertRef(n, s)
			out, changed := n.appendNormalize([]byte("keep"), s)
			if !changed {
				if want != s {
					t.Errorf("%+v: appendNormalize(%+q) reports no change, want %+q", *n, s, want)
				}
				continue
			}
			if string(out) != "keep"+want {
				t.Errorf("%+v: appendNormalize(%+q) = %+q, want %+q", *n, s, out, "keep"+want)
			}
		}
	}
}

// The state each worker writes as it encodes fills whole cache lines (and
// their prefetched neighbours), so two workers' clones and cache writers,
// allocated one after the other, never share one.
func TestWorkerStatePadded(t *testing.T) {
	if size := unsafe.Sizeof(cacheWriter{}); size < 128 || size%64 != 0 {
		t.Errorf("cacheWriter is %d bytes, want a multiple of 64 of at least 128", size)
	}
	var h HF
	if tail := unsafe.Sizeof(h) - (unsafe.Offsetof(h.normBuf) + unsafe.Sizeof(h.normBuf)); tail < 128 {
		t.Errorf("HF ends %d bytes after its last written field, want at least 128", tail)
	}
}

// splitBuf on one reused span buffer emits what split emits, for every
// behaviour, inverted or not, text after text.
func TestSplitBufReuse(t *testing.T) {
	re, err := compileRegex(`[a-z]+|\s+`)
	if err != nil {
		t.Fatal(err)
	}
	texts := append([]string{strings.Repeat("many words, and: marks! ", 40)}, appendTexts...)
	for _, b := range []splitBehavior{behRemoved, behIsolated, behContiguous, behMergedWithPrevious, behMergedWithNext} {
		for _, invert := range []bool{false, true} {
			sp := &splitPre{m: &matcher{re: re}, behavior: b, invert: invert}
			var buf []span
			for _, s := range texts {
				var got, want []piece
				sp.splitBuf(&buf, piece{s: s, first: true}, func(p piece) { got = append(got, p) })
				sp.split(piece{s: s, first: true}, func(p piece) { want = append(want, p) })
				if !slices.Equal(got, want) {
					t.Errorf("behaviour %v invert %v: splitBuf(%+q) = %+v, split gives %+v", b, invert, s, got, want)
				}
			}
		}
	}
}
