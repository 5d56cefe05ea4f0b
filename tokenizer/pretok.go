package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// piece is a pre-token: its text and whether it starts at offset 0 of the
// original input (Metaspace's prepend_scheme "first" asks).
type piece struct {
	s     string
	first bool
}

// preTokenizer is one tokenizer.json pre-tokenizer
// (tokenizers/src/pre_tokenizers): it splits p and calls emit for each part.
// Empty parts are never emitted (PreTokenizedString::split drops them).
type preTokenizer interface {
	split(p piece, emit func(piece))
}

// splitBehavior is SplitDelimiterBehavior (tokenizers/src/tokenizer/normalizer.rs).
type splitBehavior uint8

const (
	behRemoved splitBehavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

var behaviorNames = map[string]splitBehavior{
	"Removed": behRemoved, "Isolated": behIsolated, "MergedWithPrevious": behMergedWithPrevious,
	"MergedWithNext": behMergedWithNext, "Contiguous": behContiguous,
}

type preSpec struct {
	Type             string            `json:"type"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Pattern          *patternSpec      `json:"pattern"`
	Behavior         *string           `json:"behavior"`
	Invert           bool              `json:"invert"`
	Replacement      *string           `json:"replacement"`
	PrependScheme    *string           `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
	Delimiter        *string           `json:"delimiter"`
	Length           *int              `json:"length"`
}

const supportedPreTokenizers = "ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation, Digits, CharDelimiterSplit, UnicodeScripts, FixedLength, Sequence"

// parsePreTokenizer builds the pre-tokenizers at path, flattening Sequences.
func parsePreTokenizer(raw json.RawMessage, path string, depth int) ([]preTokenizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if depth > maxComponentDepth {
		return nil, fmt.Errorf("%s: Sequences nested deeper than %d", path, maxComponentDepth)
	}
	var p preSpec
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	behavior := func(def splitBehavior) (splitBehavior, error) {
		if p.Behavior == nil {
			return def, nil
		}
		b, ok := behaviorNames[*p.Behavior]
		if !ok {
			return 0, unsupported(path+".behavior", *p.Behavior, "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous")
		}
		return b, nil
	}
	switch p.Type {
	case "Sequence":
		var seq []preTokenizer
		for i, sub := range p.Pretokenizers {
			s, err := parsePreTokenizer(sub, fmt.Sprintf("%s.pretokenizers[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			seq = append(seq, s...)
		}
		return seq, nil
	case "ByteLevel":
		// Defaults of tokenizers/src/pre_tokenizers/byte_level.rs: add_prefix_space
		// and use_regex true.
		return []preTokenizer{&byteLevelPre{prefixSpace: p.AddPrefixSpace == nil || *p.AddPrefixSpace,
			useRegex: p.UseRegex == nil || *p.UseRegex}}, nil
	case "Split":
		m, err := parsePattern(p.Pattern, path+".pattern")
		if err != nil {
			return nil, err
		}
		if p.Behavior == nil {
			return nil, fmt.Errorf("%s.behavior: missing", path)
		}
		b, err := behavior(behRemoved)
		if err != nil {
			return nil, err
		}
		return []preTokenizer{&splitPre{m: m, behavior: b, invert: p.Invert}}, nil
	case "Metaspace":
		return parseMetaspace(&p, path)
	case "Whitespace":
		return []preTokenizer{funcPre(whitespaceSplit)}, nil
	case "WhitespaceSplit":
		return []preTokenizer{&charPre{is: unicode.IsSpace, behavior: behRemoved}}, nil
	case "BertPreTokenizer":
		return []preTokenizer{funcPre(bertPreTokenize)}, nil
	case "UnicodeScripts":
		return []preTokenizer{funcPre(unicodeScriptsSplit)}, nil
	case "FixedLength":
		return parseFixedLength(p.Length, path)
	case "Punctuation":
		b, err := behavior(behIsolated)
		if err != nil {
			return nil, err
		}
		return []preTokenizer{&charPre{is: isBertPunct, behavior: b}}, nil
	case "Digits":
		b := behContiguous
		if p.IndividualDigits {
			b = behIsolated
		}
		return []preTokenizer{&charPre{is: unicode.IsNumber, behavior: b}}, nil
	case "CharDelimiterSplit":
		if p.Delimiter == nil {
			return nil, fmt.Errorf("%s.delimiter: missing", path)
		}
		d, ok := validRune(*p.Delimiter)
		if !ok {
			return nil, fmt.Errorf("%s.delimiter %q: not one character", path, *p.Delimiter)
		}
		return []preTokenizer{&charPre{is: func(r rune) bool { return r == d }, behavior: behRemoved}}, nil
	}
	return nil, unsupported(path+".type", p.Type, supportedPreTokenizers)
}

// span is a part of a string and whether the pattern matched it.
type span struct {
	a, b  int
	match bool
}

// applyBehavior turns the spans of one string (covering it in order) into its
// pieces, as NormalizedString::split does for each SplitDelimiterBehavior.
func applyBehavior(p piece, spans []span, b splitBehavior, emit func(piece)) {
	out := func(a, c int) {
		if c > a {
			emit(piece{s: p.s[a:c], first: p.first && a == 0})
		}
	}
	switch b {
	case behRemoved, behIsolated:
		for _, sp := range spans {
			if b == behIsolated || !sp.match {
				out(sp.a, sp.b)
			}
		}
	case behContiguous, behMergedWithPrevious:
		start, end, have, prev := 0, 0, false, false
		for _, sp := range spans {
			merge := (b == behContiguous && sp.match == prev) || (b == behMergedWithPrevious && sp.match && !prev)
			if merge && have {
				end = sp.b
			} else {
				if have {
					out(start, end)
				}
				start, end, have = sp.a, sp.b, true
			}
			prev = sp.match
		}
		if have {
			out(start, end)
		}
	case behMergedWithNext:
		// Folded from the end: a match joins the piece after it.
		var accBuf [32][2]int // most pieces have fewer parts: no allocation
		acc, prev := accBuf[:0], false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(acc) > 0 {
				acc[len(acc)-1][0] = sp.a
			} else {
				acc = append(acc, [2]int{sp.a, sp.b})
			}
			prev = sp.match
		}
		for i := len(acc) - 1; i >= 0; i-- {
			out(acc[i][0], acc[i][1])
		}
	}
}

// splitPre is the Split pre-tokenizer (tokenizers/src/pre_tokenizers/split.rs).
type splitPre struct {
	m        *matcher
	behavior splitBehavior
	invert   bool
}

func (sp *splitPre) split(p piece, emit func(piece)) {
	if sp.behavior == behIsolated && !sp.invert {
		// Every span becomes a piece: no need to collect them.
		prev := 0
		for i := 0; i < len(p.s); {
			a, b := sp.m.next(p.s, i)
			if a < 0 {
				break
			}
			if a > prev {
				emit(piece{s: p.s[prev:a], first: p.first && prev == 0})
			}
			emit(piece{s: p.s[a:b], first: p.first && a == 0})
			prev, i = b, b
		}
		if prev < len(p.s) {
			emit(piece{s: p.s[prev:], first: p.first && prev == 0})
		}
		return
	}
	var buf [32]span
	sp.splitSpans(buf[:0], p, emit)
}

// splitBuf is split collecting the spans in *buf, which it reuses and grows:
// an encoder keeps one buffer per Split of its chain (buildChain), so a
// document with many matches costs no allocation once the buffer has grown.
func (sp *splitPre) splitBuf(buf *[]span, p piece, emit func(piece)) {
	if sp.behavior == behIsolated && !sp.invert {
		sp.split(p, emit) // collects no spans
		return
	}
	if cap(*buf) > maxNormScratch/int(unsafe.Sizeof(span{})) {
		*buf = nil // one huge document: do not keep its memory
	}
	*buf = sp.splitSpans((*buf)[:0], p, emit)
}

// splitSpans splits p with the spans collected in dst, which it returns.
func (sp *splitPre) splitSpans(dst []span, p piece, emit func(piece)) []span {
	spans := matchSpans(dst, p.s, sp.m.next)
	if sp.invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	applyBehavior(p, spans, sp.behavior, emit)
	return spans
}

// matchSpans covers s with the matches of next and the gaps between them
// (Pattern::find_matches for a regex).
func matchSpans(dst []span, s string, next func(string, int) (int, int)) []span {
	prev := 0
	for i := 0; i < len(s); {
		a, b := next(s, i)
		if a < 0 {
			break
		}
		if a > prev {
			dst = append(dst, span{prev, a, false})
		}
		dst = append(dst, span{a, b, true})
		prev, i = b, b
	}
	if prev < len(s) {
		dst = append(dst, span{prev, len(s), false})
	}
	return dst
}

// charPre splits on single characters: WhitespaceSplit, Punctuation, Digits,
// CharDelimiterSplit (the Fn(char) -> bool pattern of pattern.rs).
type charPre struct {
	is       func(rune) bool
	behavior splitBehavior
}

func (c *charPre) split(p piece, emit func(piece)) {
	var buf [32]span
	spans := buf[:0]
	last := 0
	for i, r := range p.s {
		if c.is(r) {
			if last < i {
				spans = append(spans, span{last, i, false})
			}
			w := utf8.RuneLen(r)
			if w < 0 {
				w = 1
			}
			spans = append(spans, span{i, i + w, true})
			last = i + w
		}
	}
	if last < len(p.s) {
		spans = append(spans, span{last, len(p.s), false})
	}
	applyBehavior(p, spans, c.behavior, emit)
}

type funcPre func(p piece, emit func(piece))

func (f funcPre) split(p piece, emit func(piece)) { f(p, emit) }

// isRustWord is the \w of Rust's regex crate (Unicode): Alphabetic, marks,
// decimal digits, connector punctuation and join controls.
func isRustWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.M, r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) || r == 0x200C || r == 0x200D
}

// whitespaceSplit is the Whitespace pre-tokenizer: the runs of \w+|[^\w\s]+,
// whitespace removed.
func whitespaceSplit(p piece, emit func(piece)) {
	kind := func(r rune) int {
		switch {
		case isRustWord(r):
			return 1
		case unicode.IsSpace(r):
			return 0
		}
		return 2
	}
	start, cur := 0, 0
	for i, r := range p.s {
		k := kind(r)
		if k != cur {
			if cur != 0 && i > start {
				emit(piece{s: p.s[start:i], first: p.first && start == 0})
			}
			start, cur = i, k
		}
	}
	if cur != 0 && len(p.s) > start {
		emit(piece{s: p.s[start:], first: p.first && start == 0})
	}
}

// bertPreTokenize is BertPreTokenizer: whitespace removed, punctuation isolated.
func bertPreTokenize(p piece, emit func(piece)) {
	start := -1
	for i, r := range p.s {
		switch {
		case isBertWhitespace(r), isBertPunct(r):
			if start >= 0 {
				emit(piece{s: p.s[start:i], first: p.first && start == 0})
				start = -1
			}
			if !isBertWhitespace(r) {
				emit(piece{s: p.s[i : i+utf8.RuneLen(r)], first: p.first && i == 0})
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		emit(piece{s: p.s[start:], first: p.first && start == 0})
	}
}

// byteLevelPre is the ByteLevel pre-tokenizer: an optional leading space, the
// GPT-2 split regex, and the byte-to-character mapping (done by the model
// when ByteLevel is the last pre-tokenizer, see HF.byteMode; mapped here
// otherwise).
type byteLevelPre struct {
	prefixSpace, useRegex bool
	mapBytes              bool // a pre-tokenizer follows: map bytes to characters here
}

func (b *byteLevelPre) split(p piece, emit func(piece)) {
	s := p.s
	if b.prefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	out := func(q piece) {
		if b.mapBytes {
			q.s = byteLevelString(q.s)
		}
		emit(q)
	}
	if !b.useRegex {
		out(piece{s: s, first: p.first})
		return
	}
	for i := 0; i < len(s); {
		j := nextPreToken(s, i)
		out(piece{s: s[i:j], first: p.first && i == 0})
		i = j
	}
}

// byteLevelString maps each byte of s to its GPT-2 byte character.
func byteLevelString(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteToRune[s[i]])
	}
	return sb.String()
}

// metaspacePre is the Metaspace pre-tokenizer
// (tokenizers/src/pre_tokenizers/metaspace.rs).
type metaspacePre struct {
	repl    string
	scheme  string // "always", "first", "never"
	doSplit bool
}

func parseMetaspace(p *preSpec, path string) ([]preTokenizer, error) {
	if p.Replacement == nil {
		return nil, fmt.Errorf("%s.replacement: missing", path)
	}
	if _, ok := validRune(*p.Replacement); !ok {
		return nil, fmt.Errorf("%s.replacement %q: not one character", path, *p.Replacement)
	}
	scheme := "always"
	if p.PrependScheme != nil {
		scheme = *p.PrependScheme
		if scheme != "always" && scheme != "first" && scheme != "never" {
			return nil, unsupported(path+".prepend_scheme", scheme, "always, first, never")
		}
	}
	if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
		if p.PrependScheme != nil && scheme != "never" {
			return nil, fmt.Errorf("%s: add_prefix_space false does not match prepend_scheme %q", path, scheme)
		}
		scheme = "never"
	}
	return []preTokenizer{&metaspacePre{repl: *p.Replacement, scheme: scheme, doSplit: p.Split == nil || *p.Split}}, nil
}

func (m *metaspacePre) split(p piece, emit func(piece)) {
	var buf []byte
	m.splitBuf(&buf, p, emit)
}

// splitBuf is split building the replaced text in *buf, which it reuses and
// grows: an encoder keeps one buffer per Metaspace of its chain (buildChain),
// so a document costs no allocation once the buffer has grown to its size.
// The pieces emitted live in *buf until the next call.
func (m *metaspacePre) splitBuf(buf *[]byte, p piece, emit func(piece)) {
	if cap(*buf) > maxNormScratch {
		*buf = nil // one huge document: do not keep its memory
	}
	s := p.s
	if out, changed := m.appendReplaced((*buf)[:0], p); changed {
		*buf = out
		s = unsafe.String(unsafe.SliceData(out), len(out))
	}
	if !m.doSplit {
		if s != "" {
			emit(piece{s: s, first: p.first})
		}
		return
	}
	// Split with MergedWithNext on the replacement, without collecting spans:
	// the text before the first replacement is a piece, then each replacement
	// starts one that runs to the next (applyBehavior's fold gives the same).
	start := 0
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], m.repl)
		if j < 0 {
			break
		}
		if a := i + j; a > start {
			emit(piece{s: s[start:a], first: p.first && start == 0})
			start = a
		}
		i += j + len(m.repl)
	}
	if start < len(s) {
		emit(piece{s: s[start:], first: p.first && start == 0})
	}
}

// replaced is p's text with every space turned into the replacement, which is
// also put in front where the scheme asks and the text does not begin with
// it: one allocation (none when nothing changes), where the reference builds
// the replaced text and then the prepended one (metaspace.rs pre_tokenize).
func (m *metaspacePre) replaced(p piece) string {
	out, changed := m.appendReplaced(nil, p)
	if !changed {
		return p.s
	}
	return unsafe.String(unsafe.SliceData(out), len(out)) // out is ours alone
}

// appendReplaced appends replaced(p) to dst, or returns dst, false when the
// text stays as it is.
func (m *metaspacePre) appendReplaced(dst []byte, p piece) ([]byte, bool) {
	prepend := m.scheme == "always" || (m.scheme == "first" && p.first)
	spaces := strings.Count(p.s, " ")
	if m.repl == " " {
		spaces = 0 // replacing a space by itself changes nothing
	}
	if spaces == 0 && (!prepend || strings.HasPrefix(p.s, m.repl)) {
		return dst, false
	}
	// After replacement the text begins with the replacement when it began
	// with a space or with the replacement itself.
	startsRepl := strings.HasPrefix(p.s, " ") || strings.HasPrefix(p.s, m.repl)
	dst = growBytes(dst, len(p.s)+spaces*(len(m.repl)-1)+len(m.repl))
	if prepend && !startsRepl {
		dst = append(dst, m.repl...)
	}
	rest := p.s
	for ; spaces > 0; spaces-- {
		k := strings.IndexByte(rest, ' ')
		dst = append(dst, rest[:k]...)
		dst = append(dst, m.repl...)
		rest = rest[k+1:]
	}
	return append(dst, rest...), true
}
