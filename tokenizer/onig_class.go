package tokenizer

import (
	"sort"
	"unicode/utf8"
)

// Character classes as the regex engine of Hugging Face tokenizers (Oniguruma)
// sees them: onig_tables.go is read from that engine (testdata/gen_onig_tables.js),
// because its Unicode version is older than Go's and \p{L} differs on thousands
// of code points.
const (
	clsL uint16 = 1 << iota
	clsLu
	clsLl
	clsLt
	clsLm
	clsLo
	clsM
	clsN
	clsP
	clsS
	clsSpace
	clsNd
)

// onigClassNames maps the \p{...} names this package accepts to class bits.
var onigClassNames = map[string]uint16{
	"L": clsL, "Letter": clsL, "Lu": clsLu, "Ll": clsLl, "Lt": clsLt, "Lm": clsLm, "Lo": clsLo,
	"M": clsM, "Mark": clsM, "N": clsN, "Number": clsN, "P": clsP, "Punctuation": clsP,
	"S": clsS, "Symbol": clsS, "Nd": clsNd,
}

type onigRange struct {
	lo, hi rune
	mask   uint16
}

// onigBMP is the class mask of every code point below U+10000.
var onigBMP = func() *[0x10000]uint16 {
	var t [0x10000]uint16
	for _, r := range onigRanges {
		if r.lo >= 0x10000 {
			break
		}
		for c := r.lo; c <= min(r.hi, 0xFFFF); c++ {
			t[c] = r.mask
		}
	}
	return &t
}()

// onigClass is the class mask of r (0 for invalid UTF-8, which is in no class).
func onigClass(r rune) uint16 {
	if r < 0x10000 {
		if r < 0 {
			return 0
		}
		return onigBMP[r]
	}
	i := sort.Search(len(onigRanges), func(i int) bool { return onigRanges[i].hi >= r })
	if i < len(onigRanges) && onigRanges[i].lo <= r {
		return onigRanges[i].mask
	}
	return 0
}

// onigClassAt returns the class mask and width of the character at s[i]; an
// invalid byte has mask 0 and width 1.
func onigClassAt(s string, i int) (uint16, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return onigBMP[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w <= 1 {
		return 0, 1
	}
	return onigClass(r), w
}
