package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Words of Llama 2 and Gemma 3 are whole texts: they have no pre-tokenizer
// that splits on spaces, only a normalizer that turns spaces into '▁'. BPE on
// a whole text equals BPE on its parts wherever no merge can join two parts:
// before a '▁' whose preceding character x is a token of its own, when no
// vocabulary entry holds x followed by '▁' (a merge across that point would
// produce such an entry; its left symbol ends with x and its right one starts
// with '▁'). Cutting there gives the reference's ids
// (tokenizers/src/models/bpe/word.rs merges by rank, and merges that never
// touch the same symbols do not interact), and lets the parts be cached.

// partRune is the character words are cut before.
const partRune = '▁'

// setPartCuts decides whether the model's words can be cut (no prefix or
// suffix, '▁' in the vocabulary) and which characters forbid a cut after them.
func (m *bpe) setPartCuts() {
	if m.prefix != "" || m.suffix != "" {
		return
	}
	if _, ok := m.vocab[string(partRune)]; !ok {
		return
	}
	m.noCutAfter = map[rune]bool{}
	for tok := range m.vocab {
		for i := strings.IndexRune(tok, partRune); i > 0; {
			x, _ := utf8.DecodeLastRuneInString(tok[:i])
			if x != partRune {
				m.noCutAfter[x] = true
			}
			j := strings.IndexRune(tok[i+len(string(partRune)):], partRune)
			if j < 0 {
				break
			}
			i += len(string(partRune)) + j
		}
	}
	m.noCutBMP = make([]uint64, bmpSize/64)
	for x := range m.noCutAfter {
		if x < bmpSize {
			m.noCutBMP[x/64] |= 1 << (x % 64)
		}
	}
	m.cuts = true
}

// noCut reports whether a part may not end with x.
func (m *bpe) noCut(x rune) bool {
	if x < bmpSize {
		return m.noCutBMP[x/64]&(1<<(x%64)) != 0
	}
	return m.noCutAfter[x]
}

// partEnd returns the end of the part of word that starts at i: the next
// position, after i, of a '▁' that may be cut before, or len(word).
func (m *bpe) partEnd(word string, i int) int {
	for {
		j := strings.IndexRune(word[i+1:], partRune)
		if j < 0 {
			return len(word)
		}
		cut := i + 1 + j
		if last, ok := m.lastSymbolChar(word[:cut]); ok && last != partRune && !m.noCut(last) {
			return cut
		}
		i = cut
	}
}

// lastSymbolChar is the last character of the last symbol that the end of
// word (its last character x) becomes: x when x is a token, '>' when it falls
// back to <0xXX> byte tokens or becomes an unk_token ending in '>'. ok is false
// when that is not known (a dropped character, invalid UTF-8).
func (m *bpe) lastSymbolChar(word string) (rune, bool) {
	x, w := utf8.DecodeLastRuneInString(word)
	if x == utf8.RuneError && w <= 1 {
		return 0, false
	}
	if _, ok := m.charToken(x, word[len(word)-w:]); ok {
		return x, true
	}
	if m.byteFallback && m.fallbackFor(word[len(word)-w:]) {
		return '>', true
	}
	if m.unkID >= 0 {
		r, _ := utf8.DecodeLastRuneInString(m.idToTok[m.unkID])
		return r, true
	}
	return 0, false
}
