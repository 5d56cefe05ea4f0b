package tokenizer

import "sort"

//go:generate sh -c "NODE_PATH=$MDLM_ORACLE_DIR/node_modules node testdata/gen_unicode8.js > unicode8_tables.go"

// runeRanges is a sorted list of inclusive code point ranges.
type runeRanges [][2]rune

// has reports whether r lies in one of the ranges.
func (rs runeRanges) has(r rune) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] >= r })
	return i < len(rs) && rs[i][0] <= r
}
