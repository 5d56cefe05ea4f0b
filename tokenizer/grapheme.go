package tokenizer

import (
	"sort"
	"unicode/utf8"
)

//go:generate sh -c "NODE_PATH=$MDLM_ORACLE_DIR/node_modules node testdata/gen_seg_tables.js > seg_tables.go"

// gcbClass is a Grapheme_Cluster_Break value (Unicode 16.0, UAX #29).
type gcbClass uint8

const (
	gcbOther gcbClass = iota
	gcbCR
	gcbLF
	gcbControl
	gcbExtend
	gcbZWJ
	gcbRegionalIndicator
	gcbPrepend
	gcbSpacingMark
	gcbL
	gcbV
	gcbT
	gcbLV
	gcbLVT
)

type gcbRange struct {
	lo, hi rune
	class  gcbClass
}

// gcbOf is the Grapheme_Cluster_Break class of r.
func gcbOf(r rune) gcbClass {
	if r < 0x7F {
		switch {
		case r == '\r':
			return gcbCR
		case r == '\n':
			return gcbLF
		case r < 0x20:
			return gcbControl
		}
		return gcbOther
	}
	i := sort.Search(len(gcbRanges), func(i int) bool { return gcbRanges[i].hi >= r })
	if i < len(gcbRanges) && gcbRanges[i].lo <= r {
		return gcbRanges[i].class
	}
	return gcbOther
}

// nextGrapheme returns the end of the extended grapheme cluster that starts at
// byte i of s, by the rules of UAX #29 as the unicode-segmentation crate
// applies them for graphemes(true): GB3-GB9b, GB11 (emoji ZWJ sequences) and
// GB12/13 (regional indicator pairs). GB9c (Indic conjuncts) is left out: it
// only joins clusters of 9 or more bytes, which the Precompiled normalizer
// (the only user) handles one character at a time either way.
func nextGrapheme(s string, i int) int {
	r, w := utf8.DecodeRuneInString(s[i:])
	j := i + w
	prev := gcbOf(r)
	pict := extPictRanges.has(r) // the cluster so far is ExtPict Extend* (for GB11)
	zwjAfterPict := false
	riCount := 0
	if prev == gcbRegionalIndicator {
		riCount = 1
	}
	for j < len(s) {
		r, w = utf8.DecodeRuneInString(s[j:])
		cur := gcbOf(r)
		if !joins(prev, cur, zwjAfterPict && extPictRanges.has(r), riCount) {
			break
		}
		zwjAfterPict = pict && cur == gcbZWJ
		pict = (pict && cur == gcbExtend) || (cur != gcbZWJ && cur != gcbExtend && extPictRanges.has(r))
		if cur == gcbRegionalIndicator {
			riCount++
		} else {
			riCount = 0
		}
		prev = cur
		j += w
	}
	return j
}

// joins reports whether there is no boundary between classes prev and cur:
// pictAfterZWJ is GB11's condition, riCount the regional indicators before cur.
func joins(prev, cur gcbClass, pictAfterZWJ bool, riCount int) bool {
	switch {
	case prev == gcbCR && cur == gcbLF: // GB3
		return true
	case prev == gcbCR || prev == gcbLF || prev == gcbControl: // GB4
		return false
	case cur == gcbCR || cur == gcbLF || cur == gcbControl: // GB5
		return false
	case prev == gcbL && (cur == gcbL || cur == gcbV || cur == gcbLV || cur == gcbLVT): // GB6
		return true
	case (prev == gcbLV || prev == gcbV) && (cur == gcbV || cur == gcbT): // GB7
		return true
	case (prev == gcbLVT || prev == gcbT) && cur == gcbT: // GB8
		return true
	case cur == gcbExtend || cur == gcbZWJ || cur == gcbSpacingMark: // GB9, GB9a
		return true
	case prev == gcbPrepend: // GB9b
		return true
	case prev == gcbZWJ && pictAfterZWJ: // GB11
		return true
	case prev == gcbRegionalIndicator && cur == gcbRegionalIndicator: // GB12, GB13
		return riCount%2 == 1
	}
	return false
}
