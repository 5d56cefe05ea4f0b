package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// text8Vocab is the reference's text8 character vocabulary (dataloader.py:
// Text8Tokenizer).
var text8Vocab = []string{"[CLS]", "[SEP]", "[BOS]", "[EOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]",
	"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t",
	"u", "v", "w", "x", "y", "z", " "}

type text8 struct{}

// Text8 is the text8 character tokenizer: lower-cased a–z and space, anything else [UNK].
func Text8() Tokenizer { return text8{} }

func (text8) Name() string   { return "text8" }
func (text8) VocabSize() int { return len(text8Vocab) }
func (text8) Specials() Specials {
	return Specials{BOS: 2, EOS: 3, PAD: 5, Mask: 4, UNK: 7}
}

func (text8) Encode(s string) []int {
	out := make([]int, 0, len(s))
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z':
			out = append(out, int(r-'a')+8)
		case r == ' ':
			out = append(out, 34)
		default:
			out = append(out, 7)
		}
	}
	return out
}

func (text8) Decode(ids []int) (string, error) {
	var sb strings.Builder
	for _, id := range ids {
		if id < 0 || id >= len(text8Vocab) {
			return "", fmt.Errorf("tokenizer text8: decode: id %d outside the vocabulary [0, %d)", id, len(text8Vocab))
		}
		sb.WriteString(text8Vocab[id])
	}
	return sb.String(), nil
}

// bytesTok maps each byte to its value; 256.. are specials.
type bytesTok struct{}

// Bytes is a byte tokenizer: ids 0–255 are bytes, then BOS/EOS 256, PAD 257 and
// MASK 258 (vocabulary 259). Handy for small CPU demos.
func Bytes() Tokenizer { return bytesTok{} }

var bytesSpecials = []string{"<|endoftext|>", "[PAD]", "[MASK]"}

func (bytesTok) Name() string   { return "bytes" }
func (bytesTok) VocabSize() int { return 256 + len(bytesSpecials) }
func (bytesTok) Specials() Specials {
	return Specials{BOS: 256, EOS: 256, PAD: 257, Mask: 258, UNK: -1}
}

func (bytesTok) Encode(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}

func (b bytesTok) Decode(ids []int) (string, error) {
	buf := make([]byte, 0, len(ids))
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			buf = append(buf, byte(id))
		case id >= 256 && id < b.VocabSize():
			buf = append(buf, bytesSpecials[id-256]...)
		default:
			return "", fmt.Errorf("tokenizer bytes: decode: id %d outside the vocabulary [0, %d)", id, b.VocabSize())
		}
	}
	if !utf8.Valid(buf) {
		return strings.ToValidUTF8(string(buf), "\uFFFD"), nil
	}
	return string(buf), nil
}
