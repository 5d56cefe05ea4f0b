package tokenizer

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// MaxCharsmapBytes caps a Precompiled normalizer's decoded
// precompiled_charsmap: 16 MiB. SentencePiece's nmt_nfkc map, which T5,
// XLM-RoBERTa and ALBERT ship, is about 240 KB.
const MaxCharsmapBytes = 16 << 20

// MaxCharsmapReplacement caps each replacement string of a charsmap: 256
// bytes (nmt_nfkc's longest is 33), so one character can grow the text at
// most 256 times.
const MaxCharsmapReplacement = 256

// precompiled is SentencePiece's compiled normalization rules as the
// Precompiled normalizer reads them (tokenizers/src/normalizers/precompiled.rs,
// over the spm_precompiled crate): a little-endian u32 byte size of a
// darts-clone double-array trie, the trie's u32 units, and a blob of
// NUL-terminated replacement strings the trie's values index.
type precompiled struct {
	units []uint32
	blob  []byte
	// asciiRep and asciiHas: per ASCII byte, its replacement (a view of the
	// blob, already checked as UTF-8) if the trie gives a valid one.
	asciiRep [128][]byte
	asciiHas [128]bool
	// same: the ASCII bytes normalize keeps as they are (no replacement, or
	// itself; not CR, which may join an LF), so a text of only those is
	// returned unchanged, without building a copy.
	same [128]bool
}

// parsePrecompiled decodes the base64 precompiled_charsmap at path. Every size
// is checked before it sizes anything.
func parsePrecompiled(b64 *string, path string) (*precompiled, error) {
	if b64 == nil {
		return nil, fmt.Errorf("%s.precompiled_charsmap: missing", path)
	}
	if n := base64.StdEncoding.DecodedLen(len(*b64)); n > MaxCharsmapBytes+3 {
		return nil, fmt.Errorf("%s.precompiled_charsmap: about %d bytes, over the %d-byte limit", path, n, MaxCharsmapBytes)
	}
	data, err := base64.StdEncoding.DecodeString(*b64)
	if err != nil {
		return nil, fmt.Errorf("%s.precompiled_charsmap: %w", path, err)
	}
	p, err := newPrecompiled(data)
	if err != nil {
		return nil, fmt.Errorf("%s.precompiled_charsmap: %w", path, err)
	}
	return p, nil
}

// newPrecompiled splits a decoded charsmap into the trie and the blob, as
// spm_precompiled's Precompiled::from: trie_size/4 units after the size, the
// rest (any odd bytes of trie_size included) the blob.
func newPrecompiled(data []byte) (*precompiled, error) {
	if len(data) > MaxCharsmapBytes {
		return nil, fmt.Errorf("%d bytes, over the %d-byte limit", len(data), MaxCharsmapBytes)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%d bytes, too short for the trie size", len(data))
	}
	n := int(binary.LittleEndian.Uint32(data) / 4)
	if n == 0 {
		return nil, fmt.Errorf("empty trie")
	}
	if n > (len(data)-4)/4 {
		return nil, fmt.Errorf("trie of %d units, but only %d bytes follow the size", n, len(data)-4)
	}
	p := &precompiled{units: make([]uint32, n), blob: data[4+4*n:]}
	if err := checkReplacements(p.blob); err != nil {
		return nil, err
	}
	for i := range p.units {
		p.units[i] = binary.LittleEndian.Uint32(data[4+4*i:])
	}
	for c := 1; c < len(p.asciiRep); c++ {
		p.asciiRep[c], p.asciiHas[c] = p.transform(string(rune(c)))
	}
	for c := range p.same {
		p.same[c] = c != '\r' && string(p.appendASCII(nil, byte(c))) == string(rune(c))
	}
	return p, nil
}

// unchanged reports whether normalize(s) is s: only ASCII bytes it keeps.
func (p *precompiled) unchanged(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !p.same[c] {
			return false
		}
	}
	return true
}

// checkReplacements refuses a blob with a string (up to a NUL or the end) over
// MaxCharsmapReplacement bytes: a value pointing anywhere into the blob then
// yields at most that much.
func checkReplacements(blob []byte) error {
	start := 0
	for i := 0; i <= len(blob); i++ {
		if i == len(blob) || blob[i] == 0 {
			if i-start > MaxCharsmapReplacement {
				return fmt.Errorf("replacement of %d bytes at offset %d of the normalized strings, over the %d-byte limit",
					i-start, start, MaxCharsmapReplacement)
			}
			start = i + 1
		}
	}
	return nil
}

// The fields of a darts-clone unit.
func dartsHasLeaf(u uint32) bool  { return u>>8&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func dartsOffset(u uint32) uint32 { return u >> 10 << ((u & (1 << 9)) >> 6) }

// firstMatch is the value of the shortest prefix of key the trie holds
// (spm_precompiled takes the first result of its common_prefix_search); the
// search stops at a NUL byte. A unit index outside the array ends the search
// (the reference would panic).
func (p *precompiled) firstMatch(key string) (uint32, bool) {
	pos := dartsOffset(p.units[0])
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == 0 {
			break
		}
		pos ^= uint32(c)
		if int(pos) >= len(p.units) {
			return 0, false
		}
		u := p.units[pos]
		if dartsLabel(u) != uint32(c) {
			return 0, false
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if int(pos) >= len(p.units) {
				return 0, false
			}
			return dartsValue(p.units[pos]), true
		}
	}
	return 0, false
}

// replacement is the blob string at off: up to its NUL, and only when valid
// UTF-8 (Precompiled::transform).
func (p *precompiled) replacement(off int) ([]byte, bool) {
	if off > len(p.blob) {
		return nil, false // the reference would panic
	}
	end := off
	for end < len(p.blob) && p.blob[end] != 0 {
		end++
	}
	s := p.blob[off:end]
	if !utf8.Valid(s) {
		return nil, false
	}
	return s, true // a view of the blob: no copy per character
}

// transform is the replacement of chunk, if the trie has one.
func (p *precompiled) transform(chunk string) ([]byte, bool) {
	v, ok := p.firstMatch(chunk)
	if !ok {
		return nil, false
	}
	return p.replacement(int(v))
}

// normalize is the Precompiled normalizer: each extended grapheme cluster of
// under 6 bytes is replaced whole when the trie has a replacement for it (that
// is, for its shortest prefix the trie holds); otherwise each of its
// characters is replaced, or kept.
func (p *precompiled) normalize(s string) string {
	if p.unchanged(s) {
		return s
	}
	return p.normalizeAll(s)
}

// normalizeAll is normalize without its shortcut for text it keeps as it is.
func (p *precompiled) normalizeAll(s string) string {
	out := p.appendAll(nil, s)
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is ours alone: no copy
}

// appendNormalize is normalize writing into dst (appendNormalizer).
func (p *precompiled) appendNormalize(dst []byte, s string) ([]byte, bool) {
	if p.unchanged(s) {
		return dst, false
	}
	return p.appendAll(dst, s), true
}

// appendAll appends the normalization of s to dst.
func (p *precompiled) appendAll(dst []byte, s string) []byte {
	dst = growBytes(dst, len(s)+len(s)/8)
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && c != '\r' && (i+1 == len(s) || s[i+1] < utf8.RuneSelf) {
			// An ASCII character followed by ASCII (or nothing) is a cluster of
			// its own, except CR before LF.
			dst = p.appendASCII(dst, c)
			i++
			continue
		}
		j := nextGrapheme(s, i)
		dst = p.appendCluster(dst, s[i:j])
		i = j
	}
	return dst
}

// appendCluster appends the normalization of one grapheme cluster g: its
// replacement when it is under 6 bytes and the trie has one, else each
// character's replacement, or the character.
func (p *precompiled) appendCluster(dst []byte, g string) []byte {
	if len(g) < 6 {
		if rep, ok := p.transform(g); ok {
			return append(dst, rep...)
		}
	}
	for k := 0; k < len(g); {
		_, w := utf8.DecodeRuneInString(g[k:])
		if rep, ok := p.transform(g[k : k+w]); ok {
			dst = append(dst, rep...)
		} else {
			dst = append(dst, g[k:k+w]...)
		}
		k += w
	}
	return dst
}

func (p *precompiled) appendASCII(dst []byte, c byte) []byte {
	if p.asciiHas[c] {
		return append(dst, p.asciiRep[c]...)
	}
	return append(dst, c)
}
