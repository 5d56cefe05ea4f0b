package tokenizer

import (
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The NFC, NFD, NFKC and NFKD normalizers. Hugging Face tokenizers normalizes
// with the unicode-normalization-alignments crate, whose data is Unicode 9.0
// (tokenizers/src/normalizers/unicode.rs), while golang.org/x/text is Unicode
// 17 and composes a supplementary starter with a following mark as if it were
// the BMP character of its low 16 bits (U+10041 U+0301 becomes U+00C1, a key
// collision in its composition table). So decomposition uses x/text, which is
// right for every character Unicode 9.0 knows, characters added since then with
// normalization data of their own (norm9Barrier, read from the reference by
// testdata/gen_norm_probe.js) are left as they are, as Unicode 9.0 leaves an
// unassigned code point, and composition is done here.

// unicodeNormalizer is the NFC, NFD, NFKC or NFKD normalizer.
func unicodeNormalizer(form string) normalizer {
	compat := form == "NFKC" || form == "NFKD"
	compose := form == "NFC" || form == "NFKC"
	decomp := norm.NFD
	if compat {
		decomp = norm.NFKD
	}
	quick := map[string]norm.Form{"NFC": norm.NFC, "NFD": norm.NFD, "NFKC": norm.NFKC, "NFKD": norm.NFKD}[form]
	return normalizerFunc(func(s string) string {
		if isASCII(s) {
			return s
		}
		// Go's quick check says "normalized" only when no reordering or
		// composition applies, by data that agrees with Unicode 9.0 on every
		// character that version knows (and its key collisions only add false
		// "not normalized" answers).
		if quick.IsNormalString(s) && !hasBarrier(s) {
			return s
		}
		return normalizeSlow(s, decomp, compose)
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasBarrier(s string) bool {
	for _, r := range s {
		if r >= 0x300 && isNorm9Barrier(r) {
			return true
		}
	}
	return false
}

func isNorm9Barrier(r rune) bool {
	i := sort.Search(len(norm9Barrier), func(i int) bool { return norm9Barrier[i][1] >= r })
	return i < len(norm9Barrier) && norm9Barrier[i][0] <= r
}

// normalizeSlow decomposes the text between barrier characters with x/text,
// keeps the barriers, and composes when asked.
func normalizeSlow(s string, decomp norm.Form, compose bool) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	start := 0
	for i, r := range s {
		if r >= 0x300 && isNorm9Barrier(r) {
			sb.WriteString(decomp.String(s[start:i]))
			sb.WriteRune(r)
			start = i + utf8.RuneLen(r)
		}
	}
	sb.WriteString(decomp.String(s[start:]))
	if !compose {
		return sb.String()
	}
	return composeCanonical(sb.String())
}

const (
	hangulS, hangulL, hangulV, hangulT       = 0xAC00, 0x1100, 0x1161, 0x11A7
	hangulLCount, hangulVCount, hangulTCount = 19, 21, 28
	hangulNCount                             = hangulVCount * hangulTCount
	hangulSCount                             = hangulLCount * hangulNCount
)

// composeCanonical is the canonical composition algorithm on decomposed text:
// each character joins the last starter when no character between them blocks
// it and the pair has a primary composite.
func composeCanonical(s string) string {
	pairs := compositionPairs()
	rs := []rune(s)
	out := rs[:0]
	starter := -1 // index in out of the last starter
	lastCCC := -1 // ccc of the last character appended after the starter
	for _, r := range rs {
		ccc := combiningClass(r)
		if starter >= 0 {
			blocked := lastCCC != -1 && (lastCCC == 0 || lastCCC >= ccc)
			if !blocked {
				if c, ok := composePair(pairs, out[starter], r); ok {
					out[starter] = c
					continue
				}
			}
		}
		if ccc == 0 {
			starter, lastCCC = len(out), -1
		} else {
			lastCCC = ccc
		}
		out = append(out, r)
	}
	return string(out)
}

func composePair(pairs map[uint64]rune, a, b rune) (rune, bool) {
	if a >= hangulL && a < hangulL+hangulLCount && b >= hangulV && b < hangulV+hangulVCount {
		return hangulS + ((a-hangulL)*hangulVCount+(b-hangulV))*hangulTCount, true
	}
	if a >= hangulS && a < hangulS+hangulSCount && (a-hangulS)%hangulTCount == 0 && b > hangulT && b < hangulT+hangulTCount {
		return a + (b - hangulT), true
	}
	c, ok := pairs[uint64(a)<<32|uint64(b)]
	return c, ok
}

// combiningClass is the canonical combining class (0 for a barrier).
func combiningClass(r rune) int {
	if r < 0x300 || isNorm9Barrier(r) {
		return 0
	}
	var buf [4]byte
	n := utf8.EncodeRune(buf[:], r)
	return int(norm.NFD.Properties(buf[:n]).CCC())
}

var (
	pairsOnce sync.Once
	pairsMap  map[uint64]rune
)

// compositionPairs maps (first, second) to every primary composite that
// Unicode 9.0 knows: a character that NFC keeps and that decomposes, paired
// as (the composite of its decomposition less the last character, that last
// character). Built once, on first use (about 0.1 s).
func compositionPairs() map[uint64]rune {
	pairsOnce.Do(func() {
		byDecomp := map[string]rune{}
		var composites []rune
		for r := rune(0xC0); r <= utf8.MaxRune; r++ {
			if (r >= 0xD800 && r <= 0xDFFF) || (r >= hangulS && r < hangulS+hangulSCount) || isNorm9Barrier(r) {
				continue
			}
			s := string(r)
			d := norm.NFD.PropertiesString(s).Decomposition()
			if len(d) == 0 || utf8.RuneCount(d) < 2 || norm.NFC.String(s) != s {
				continue
			}
			byDecomp[string(d)] = r
			composites = append(composites, r)
		}
		pairsMap = make(map[uint64]rune, len(composites))
		for _, c := range composites {
			d := []rune(norm.NFD.String(string(c)))
			last := d[len(d)-1]
			first := d[0]
			if len(d) > 2 {
				f, ok := byDecomp[string(d[:len(d)-1])]
				if !ok {
					continue
				}
				first = f
			}
			pairsMap[uint64(first)<<32|uint64(last)] = c
		}
	})
	return pairsMap
}
