package tokenizer

import (
	"sort"
	"unicode/utf8"
)

type scriptRange struct {
	lo, hi rune
	script uint8
}

var (
	scriptHan      = scriptIndex("Han")
	scriptHiragana = scriptIndex("Hiragana")
	scriptKatakana = scriptIndex("Katakana")
)

func scriptIndex(name string) uint8 {
	for i, n := range scriptNames {
		if n == name {
			return uint8(i + 1)
		}
	}
	panic("tokenizer: no script " + name)
}

// scriptAny is the "Any" script of code points the table does not list, and
// of the space.
const scriptAny = 0

// fixedScript is the script UnicodeScripts groups r by
// (tokenizers/src/pre_tokenizers/unicode_scripts/pre_tokenizer.rs
// fixed_script): Hiragana, Katakana and U+30FC count as Han, the space as Any.
func fixedScript(r rune) uint8 {
	switch r {
	case 0x30FC:
		return scriptHan
	case ' ':
		return scriptAny
	}
	i := sort.Search(len(scriptRanges), func(i int) bool { return scriptRanges[i].hi >= r })
	if i == len(scriptRanges) || scriptRanges[i].lo > r {
		return scriptAny
	}
	s := scriptRanges[i].script
	if s == scriptHiragana || s == scriptKatakana {
		return scriptHan
	}
	return s
}

// asciiScript caches fixedScript for ASCII.
var asciiScript = func() (t [128]uint8) {
	for r := range rune(128) {
		t[r] = fixedScript(r)
	}
	return t
}()

// unicodeScriptsSplit is the UnicodeScripts pre-tokenizer: a piece starts
// wherever the script changes, Any (the space, unlisted code points) never
// starting one nor counting as the script before the next character. As in
// the reference, text before the first character with a script (leading
// spaces) belongs to no piece and is dropped.
func unicodeScriptsSplit(p piece, emit func(piece)) {
	last, haveLast := uint8(0), false
	start := -1
	for i := 0; i < len(p.s); {
		var sc uint8
		w := 1
		if c := p.s[i]; c < utf8.RuneSelf {
			sc = asciiScript[c]
		} else {
			var r rune
			r, w = utf8.DecodeRuneInString(p.s[i:])
			sc = fixedScript(r)
		}
		if sc != scriptAny && (!haveLast || last != sc) {
			if start >= 0 && i > start {
				emit(piece{s: p.s[start:i], first: p.first && start == 0})
			}
			start = i
		}
		if sc != scriptAny {
			last, haveLast = sc, true
		}
		i += w
	}
	if start >= 0 && start < len(p.s) {
		emit(piece{s: p.s[start:], first: p.first && start == 0})
	}
}
