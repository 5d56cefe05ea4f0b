package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// normalizer is one tokenizer.json normalizer (tokenizers/src/normalizers).
type normalizer interface {
	normalize(s string) string
}

type normalizerFunc func(string) string

func (f normalizerFunc) normalize(s string) string { return f(s) }

// normSpec is the fields of every normalizer type this package reads.
type normSpec struct {
	Type               string            `json:"type"`
	Normalizers        []json.RawMessage `json:"normalizers"`
	Prepend            *string           `json:"prepend"`
	Pattern            *patternSpec      `json:"pattern"`
	Content            *string           `json:"content"`
	StripLeft          bool              `json:"strip_left"`
	StripRight         bool              `json:"strip_right"`
	CleanText          bool              `json:"clean_text"`
	HandleChineseChars bool              `json:"handle_chinese_chars"`
	StripAccents       *bool             `json:"strip_accents"`
	Lowercase          bool              `json:"lowercase"`
	Charsmap           *string           `json:"precompiled_charsmap"`
}

// patternSpec is a Split/Replace pattern: {"String": s} or {"Regex": r}.
type patternSpec struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

const supportedNormalizers = "BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Nmt, Precompiled, ByteLevel, Sequence"

// maxComponentDepth bounds nested Sequences of normalizers, pre-tokenizers,
// decoders and post-processors (real files nest one level).
const maxComponentDepth = 8

// parseNormalizer builds the normalizer at JSON path (nil for none).
func parseNormalizer(raw json.RawMessage, path string, depth int) (normalizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if depth > maxComponentDepth {
		return nil, fmt.Errorf("%s: Sequences nested deeper than %d", path, maxComponentDepth)
	}
	var n normSpec
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch n.Type {
	case "Sequence":
		var seq []normalizer
		for i, sub := range n.Normalizers {
			s, err := parseNormalizer(sub, fmt.Sprintf("%s.normalizers[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			if s != nil {
				seq = append(seq, s)
			}
		}
		return sequenceNormalizer(seq), nil
	case "BertNormalizer":
		strip := n.Lowercase
		if n.StripAccents != nil {
			strip = *n.StripAccents
		}
		return &bertNormalizer{clean: n.CleanText, chinese: n.HandleChineseChars, stripAccents: strip, lowercase: n.Lowercase}, nil
	case "NFC", "NFD", "NFKC", "NFKD":
		return unicodeNormalizer(n.Type), nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		l, r := n.StripLeft, n.StripRight
		return normalizerFunc(func(s string) string { return stripSpaces(s, l, r) }), nil
	case "StripAccents":
		return normalizerFunc(stripCombiningMarks), nil
	case "Nmt":
		return normalizerFunc(nmt), nil
	case "Prepend":
		if n.Prepend == nil {
			return nil, fmt.Errorf("%s.prepend: missing", path)
		}
		return prependNorm(*n.Prepend), nil
	case "Replace":
		return parseReplace(n.Pattern, n.Content, path)
	case "Precompiled":
		return parsePrecompiled(n.Charsmap, path)
	case "ByteLevel":
		return byteLevelNorm{}, nil
	}
	return nil, unsupported(path+".type", n.Type, supportedNormalizers)
}

func sequenceNormalizer(seq []normalizer) normalizer {
	seq = fuseNormalizers(seq)
	if len(seq) == 0 {
		return nil
	}
	if len(seq) == 1 {
		return seq[0]
	}
	return seqNorm(seq)
}

// parseReplace is the Replace normalizer (tokenizers/src/normalizers/replace.rs):
// every leftmost non-overlapping match of the pattern becomes content.
func parseReplace(pat *patternSpec, content *string, path string) (normalizer, error) {
	m, err := parsePattern(pat, path+".pattern")
	if err != nil {
		return nil, err
	}
	if content == nil {
		return nil, fmt.Errorf("%s.content: missing", path)
	}
	c := *content
	if pat.Regex != nil && *pat.Regex == " {2,}" && c == " " {
		return collapseNorm{}, nil
	}
	if m.re == nil {
		return literalReplace{old: m.literal, new: c}, nil
	}
	return normalizerFunc(func(s string) string { return m.replaceAll(s, c) }), nil
}

// prependNorm is the Prepend normalizer (tokenizers/src/normalizers/prepend.rs):
// it prepends to any text but the empty one.
type prependNorm string

func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

// literalReplace is the Replace normalizer with a String pattern.
type literalReplace struct{ old, new string }

func (r literalReplace) normalize(s string) string { return strings.ReplaceAll(s, r.old, r.new) }

// fuseNormalizers joins a Prepend followed by a Replace of one character (the
// Llama 2 family's sequence) into one normalizer that builds one string per
// text instead of two. A one-character pattern cannot match across the
// boundary of valid UTF-8 prepended text (a match would begin with an
// unfinished character at its end), so replacing in each part gives the same
// text; a prefix of invalid UTF-8 (JSON never gives one) is not fused.
func fuseNormalizers(seq []normalizer) []normalizer {
	out := seq[:0:0]
	for i := 0; i < len(seq); i++ {
		p, isPre := seq[i].(prependNorm)
		if i+1 < len(seq) && isPre {
			if r, ok := seq[i+1].(literalReplace); ok {
				if _, one := validRune(r.old); one && utf8.ValidString(string(p)) {
					out = append(out, prependReplace{pre: strings.ReplaceAll(string(p), r.old, r.new), r: r})
					i++
					continue
				}
			}
		}
		out = append(out, seq[i])
	}
	return out
}

// prependReplace is a Prepend then a one-character Replace (fuseNormalizers).
type prependReplace struct {
	pre string // the prepended text, already replaced
	r   literalReplace
}

func (f prependReplace) normalize(s string) string { return normalizeAppended(f, s) }

// lowercaseRust is NormalizedString::lowercase: Rust's char::to_lowercase for
// each character, whose only multi-character result is U+0130 -> "i̇".
func lowercaseRust(s string) string {
	if lowerASCII(s) {
		return s
	}
	return lowercaseAll(s)
}

// lowercaseAll is lowercaseRust without its shortcut for text it keeps.
func lowercaseAll(s string) string {
	out := appendLowercase(nil, s)
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is ours alone: no copy
}

// lowerASCII reports whether s is ASCII without an upper-case letter, which
// lowercaseRust returns as it is.
func lowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// stripSpaces is the Strip normalizer: leading and/or trailing White_Space.
func stripSpaces(s string, left, right bool) string {
	if left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripCombiningMarks is the StripAccents normalizer: drops combining marks
// (Unicode 9.0 marks, as the reference's unicode-normalization-alignments
// crate knows them).
func stripCombiningMarks(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x300 && u9Mark.has(r) {
			return -1
		}
		return r
	}, s)
}

// nmt is the Nmt normalizer (tokenizers/src/normalizers/unicode.rs do_nmt).
func nmt(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case (r >= 1 && r <= 8) || r == 0xB || (r >= 0xE && r <= 0x1F) || r == 0x7F || r == 0x8F || r == 0x9F:
			return -1
		case r == 9 || r == 0xA || r == 0xC || r == 0xD || r == 0x1680 || (r >= 0x200B && r <= 0x200F) ||
			r == 0x2028 || r == 0x2029 || r == 0x2581 || r == 0xFEFF || r == 0xFFFD:
			return ' '
		}
		return r
	}, s)
}

// matcher finds the matches of a Split or Replace pattern.
type matcher struct {
	literal string // a String pattern
	re      *Regex // a Regex pattern
}

// parsePattern reads {"String": s} or {"Regex": r} at path.
func parsePattern(p *patternSpec, path string) (*matcher, error) {
	switch {
	case p == nil || (p.String == nil) == (p.Regex == nil):
		return nil, fmt.Errorf("%s: want exactly one of String or Regex", path)
	case p.String != nil:
		if *p.String == "" {
			return nil, unsupported(path+".String", "", "a non-empty string")
		}
		return &matcher{literal: *p.String}, nil
	}
	re, err := compileRegex(*p.Regex)
	if err != nil {
		return nil, fmt.Errorf("%s.Regex %q: %w", path, *p.Regex, wrapRegexErr(err))
	}
	return &matcher{re: re}, nil
}

func wrapRegexErr(err error) error {
	if isRegexUnsupported(err) {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// next returns the first match at or after i, or -1, -1.
func (m *matcher) next(s string, i int) (int, int) {
	if m.re != nil {
		return m.re.find(s, i)
	}
	j := strings.Index(s[i:], m.literal)
	if j < 0 {
		return -1, -1
	}
	return i + j, i + j + len(m.literal)
}

func (m *matcher) replaceAll(s, content string) string {
	if m.re == nil {
		return strings.ReplaceAll(s, m.literal, content)
	}
	var sb strings.Builder
	last := 0
	for i := 0; i < len(s); {
		a, b := m.next(s, i)
		if a < 0 {
			break
		}
		sb.WriteString(s[last:a])
		sb.WriteString(content)
		last, i = b, b
	}
	if last == 0 {
		return s
	}
	sb.WriteString(s[last:])
	return sb.String()
}

// validRune reports whether s holds exactly one character.
func validRune(s string) (rune, bool) {
	r, w := utf8.DecodeRuneInString(s)
	return r, w == len(s) && r != utf8.RuneError
}
