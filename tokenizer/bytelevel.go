package tokenizer

import (
	"unicode/utf8"
)

// byteToRune is GPT-2's bytes_to_unicode: printable Latin-1 bytes map to
// themselves, the other 68 bytes to U+0100 onwards, so every byte is a visible
// character in the vocabulary.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// charClass of the GPT-2 pre-tokenizer regex
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
type charClass uint8

const (
	classLetter charClass = iota
	classNumber
	classSpace
	classOther
)

// asciiClass caches the class of every ASCII byte.
var asciiClass = func() (t [128]charClass) {
	for b := 0; b < 128; b++ {
		t[b] = classOfRune(rune(b))
	}
	return
}()

// classOfRune uses the regex engine's own tables (onig_class.go): Go's
// unicode package is a newer Unicode version than Hugging Face's Oniguruma.
func classOfRune(r rune) charClass {
	m := onigClass(r)
	switch {
	case m&clsL != 0:
		return classLetter
	case m&clsN != 0:
		return classNumber
	case m&clsSpace != 0:
		return classSpace
	}
	return classOther
}

// classAt returns the class and byte width of the character at s[i]. Invalid
// UTF-8 bytes are "other" (they are not \s, \p{L} or \p{N}) of width 1.
func classAt(s string, i int) (charClass, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w <= 1 {
		return classOther, 1
	}
	return classOfRune(r), w
}

// runEnd returns the end of the run of class c starting at i.
func runEnd(s string, i int, c charClass) int {
	for i < len(s) {
		ci, w := classAt(s, i)
		if ci != c {
			break
		}
		i += w
	}
	return i
}

// contraction reports the length of 's 't 're 've 'm 'll 'd at s[i] (0 if none).
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	switch s[i+1] {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2] == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2] == 'l' {
			return 3
		}
	}
	return 0
}

// nextPreToken returns the end of the GPT-2 pre-token starting at i, following the
// regex's alternation order exactly (leftmost alternative that matches wins).
func nextPreToken(s string, i int) int {
	if n := contraction(s, i); n > 0 {
		return i + n
	}
	c, w := classAt(s, i)
	start := i
	if s[i] == ' ' && i+1 < len(s) { // " ?X+": an optional single space before a run
		if c2, _ := classAt(s, i+1); c2 != classSpace {
			return runEnd(s, i+1, c2)
		}
	}
	if c != classSpace {
		return runEnd(s, i+w, c)
	}
	// Whitespace: \s+(?!\S) takes the run but leaves its last character when a
	// non-space follows (that character then starts the next token); \s+ takes a
	// single leftover character.
	end := runEnd(s, i, classSpace)
	if end == len(s) {
		return end
	}
	last := end - lastRuneWidth(s[:end])
	if last > start {
		return last
	}
	return end
}

func lastRuneWidth(s string) int {
	_, w := utf8.DecodeLastRuneInString(s)
	if w == 0 {
		return 1
	}
	return w
}
