package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// appendNormalizer is a normalizer that can write its output into a buffer
// the caller owns, so that a worker normalizing document after document
// reuses the same memory instead of allocating a document-sized string per
// step (normScratch).
type appendNormalizer interface {
	normalizer
	// appendNormalize appends the normalization of s to dst and returns it
	// with true, or returns dst unchanged with false when s normalizes to
	// itself (then nothing is appended and s is the result).
	appendNormalize(dst []byte, s string) ([]byte, bool)
}

// seqNorm is the Sequence normalizer (tokenizers/src/normalizers/utils.rs):
// each normalizer on the text the previous one gave.
type seqNorm []normalizer

func (q seqNorm) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// normSteps is the normalizers that n runs, in order: a Sequence's, or n.
func normSteps(n normalizer) []normalizer {
	if q, ok := n.(seqNorm); ok {
		return q
	}
	if n == nil {
		return nil
	}
	return []normalizer{n}
}

// maxNormScratch is the largest buffer a normScratch keeps from one document
// to the next (1 MiB); a larger document's buffers are dropped at the next.
const maxNormScratch = 1 << 20

// normScratch is one encoder's two ping-pong buffers for its normalizers:
// each appendNormalizer writes into the buffer its input does not live in.
// A text costs no allocation once the buffers have grown to its size.
type normScratch struct {
	buf [2][]byte
}

// run normalizes s through steps. The result may live in the scratch: it is
// valid until the next call of run, so the caller must not keep it (the
// encoder consumes it at once; the piece cache copies what it stores).
func (ns *normScratch) run(steps []normalizer, s string) string {
	for i := range ns.buf {
		if cap(ns.buf[i]) > maxNormScratch {
			ns.buf[i] = nil // one huge document: do not keep its memory
		}
	}
	cur := -1 // the buffer s lives in; -1: none
	for _, n := range steps {
		a, ok := n.(appendNormalizer)
		if !ok {
			// The result is a fresh string or a part of s, so it lives in
			// buffer cur at most: keeping cur keeps the other one free.
			s = n.normalize(s)
			continue
		}
		k := 0
		if cur == 0 {
			k = 1
		}
		out, changed := a.appendNormalize(ns.buf[k][:0], s)
		if !changed {
			continue
		}
		ns.buf[k] = out
		s, cur = unsafe.String(unsafe.SliceData(out), len(out)), k
	}
	return s
}

// normalizeAppended is normalize for an appendNormalizer: a new string, or s
// when it stays as it is.
func normalizeAppended(a appendNormalizer, s string) string {
	out, changed := a.appendNormalize(nil, s)
	if !changed {
		return s
	}
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is ours alone: no copy
}

// lowercaseNorm is the Lowercase normalizer (lowercaseRust).
type lowercaseNorm struct{}

func (lowercaseNorm) normalize(s string) string { return lowercaseRust(s) }

func (lowercaseNorm) appendNormalize(dst []byte, s string) ([]byte, bool) {
	if lowerASCII(s) {
		return dst, false
	}
	return appendLowercase(dst, s), true
}

// appendLowercase appends NormalizedString::lowercase of s: Rust's
// char::to_lowercase for each character (an invalid byte reads as U+FFFD, as
// ranging over a Go string does).
func appendLowercase(dst []byte, s string) []byte {
	dst = growBytes(dst, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		i += w
		if r == 0x130 {
			dst = append(dst, "i\u0307"...)
			continue
		}
		dst = utf8.AppendRune(dst, unicode.ToLower(r))
	}
	return dst
}

// growBytes makes room for n more bytes in dst, so that appending a text of
// about that size reallocates at most once.
func growBytes(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	grown := make([]byte, len(dst), len(dst)+n+n/8)
	copy(grown, dst)
	return grown
}

// collapseNorm is the Replace of " {2,}" by " " (collapseSpaces).
type collapseNorm struct{}

func (collapseNorm) normalize(s string) string { return collapseSpaces(s) }

func (collapseNorm) appendNormalize(dst []byte, s string) ([]byte, bool) {
	i := strings.Index(s, "  ")
	if i < 0 {
		return dst, false
	}
	dst = growBytes(dst, len(s))
	for i >= 0 {
		dst = append(dst, s[:i+1]...)
		j := i + 2
		for j < len(s) && s[j] == ' ' {
			j++
		}
		s = s[j:]
		i = strings.Index(s, "  ")
	}
	return append(dst, s...), true
}

func (r literalReplace) appendNormalize(dst []byte, s string) ([]byte, bool) {
	i := strings.Index(s, r.old) // r.old is never empty: parsePattern refuses it
	if i < 0 {
		return dst, false
	}
	room := len(s)
	if len(r.new) > len(r.old) { // only a longer replacement needs the count
		room += (len(r.new) - len(r.old)) * strings.Count(s, r.old)
	}
	dst = growBytes(dst, room)
	for i >= 0 {
		dst = append(dst, s[:i]...)
		dst = append(dst, r.new...)
		s = s[i+len(r.old):]
		i = strings.Index(s, r.old)
	}
	return append(dst, s...), true
}

func (p prependNorm) appendNormalize(dst []byte, s string) ([]byte, bool) {
	if s == "" || p == "" {
		return dst, false
	}
	dst = growBytes(dst, len(p)+len(s))
	return append(append(dst, p...), s...), true
}

func (f prependReplace) appendNormalize(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	n := strings.Count(s, f.r.old)
	dst = growBytes(dst, len(f.pre)+len(s)+n*max(0, len(f.r.new)-len(f.r.old)))
	dst = append(dst, f.pre...)
	for ; n > 0; n-- {
		i := strings.Index(s, f.r.old)
		dst = append(dst, s[:i]...)
		dst = append(dst, f.r.new...)
		s = s[i+len(f.r.old):]
	}
	return append(dst, s...), true
}

// byteLevelNorm is the ByteLevel normalizer
// (tokenizers/src/normalizers/byte_level.rs): each byte becomes its GPT-2
// byte character (byteLevelString).
type byteLevelNorm struct{}

func (byteLevelNorm) normalize(s string) string { return normalizeAppended(byteLevelNorm{}, s) }

func (byteLevelNorm) appendNormalize(dst []byte, s string) ([]byte, bool) {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && byteToRune[s[i]] == rune(s[i]) {
		i++ // printable ASCII is its own byte character (Latin-1 ones need two bytes)
	}
	if i == len(s) {
		return dst, false
	}
	dst = growBytes(dst, 2*len(s))
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		dst = utf8.AppendRune(dst, byteToRune[s[i]])
	}
	return dst, true
}
