package tokenizer

import (
	"fmt"
	"strings"
)

// maxFixedLength bounds FixedLength's length (characters per piece).
const maxFixedLength = 1 << 20

// fixedLengthPre is the FixedLength pre-tokenizer
// (tokenizers/src/pre_tokenizers/fixed_length.rs): pieces of length
// characters, the last one shorter.
type fixedLengthPre struct{ length int }

func parseFixedLength(length *int, path string) ([]preTokenizer, error) {
	n := 5 // the reference's default
	if length != nil {
		n = *length
	}
	if n < 1 || n > maxFixedLength {
		return nil, fmt.Errorf("%s.length: %d outside [1, %d]", path, n, maxFixedLength)
	}
	return []preTokenizer{&fixedLengthPre{length: n}}, nil
}

func (f *fixedLengthPre) split(p piece, emit func(piece)) {
	start, count := 0, 0
	for i := range p.s {
		if count == f.length {
			emit(piece{s: p.s[start:i], first: p.first && start == 0})
			start, count = i, 0
		}
		count++
	}
	if start < len(p.s) {
		emit(piece{s: p.s[start:], first: p.first && start == 0})
	}
}

// ctcDecoder is the CTC decoder (tokenizers/src/decoders/ctc.rs): repeated
// tokens collapse to one, the pad token is removed, and with cleanup the
// WordPiece clean-up applies and the word delimiter becomes a space; tokens
// left empty are dropped.
type ctcDecoder struct {
	pad, delimiter string
	cleanup        bool
}

func (c ctcDecoder) decode(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	for i, t := range tokens {
		if i > 0 && t == tokens[i-1] {
			continue
		}
		t = strings.ReplaceAll(t, c.pad, "")
		if c.cleanup {
			t = strings.ReplaceAll(cleanupDecoded(t), c.delimiter, " ")
		}
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// collapseSpaces is the Replace normalizer with the regex " {2,}" and content
// " " that SentencePiece-converted files (T5, XLM-RoBERTa, ALBERT) end their
// normalizers with: each run of two or more spaces becomes one. Matching the
// pattern directly gives the same text as the regex matcher, faster.
func collapseSpaces(s string) string { return normalizeAppended(collapseNorm{}, s) }
