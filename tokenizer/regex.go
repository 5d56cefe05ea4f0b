package tokenizer

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// A small backtracking regex engine for the split patterns of tokenizer.json
// files. Hugging Face tokenizers compiles them with Oniguruma
// (tokenizers/src/utils/onig.rs SysRegex) and splits on find_iter's
// leftmost-first matches (tokenizers/src/tokenizer/pattern.rs); Go's regexp has
// neither look-ahead nor Oniguruma's Unicode tables. This engine reads the
// subset the hub's files use: literals and escapes, character classes with
// \p{..}, \s, \d, ranges and negation, '.', groups (capturing, (?:), (?i:)),
// alternation, greedy and lazy quantifiers, and look-ahead (?=) (?!). Anything
// else (anchors, back-references, look-behind, possessive quantifiers, \w, \b,
// POSIX brackets, a pattern that can match the empty string) is refused, never
// approximated.

// errRegexUnsupported marks a pattern outside the subset.
var errRegexUnsupported = errors.New("outside the supported regex subset")

// maxRegexLen bounds a pattern's length and maxRegexNodes its compiled size:
// real split patterns are under 300 bytes.
const (
	maxRegexLen   = 1024
	maxRegexNodes = 8192
	maxRegexDepth = 64
)

type reKind uint8

const (
	reChar   reKind = iota // one character of set
	reAlt                  // alternatives, tried in order
	reRep                  // repetition of a single-character node (fast path)
	reLoop                 // repetition of a sub-pattern
	reLook                 // look-ahead
	reAccept               // end of the pattern (or of a look-ahead body)
)

// reNode is a compiled node; next is what follows it.
type reNode struct {
	kind     reKind
	set      *charSet
	alts     []*reNode
	body     *reNode // reLoop, reLook: first node of the body
	min, max int     // reRep, reLoop; max < 0: unbounded
	greedy   bool
	negate   bool // reLook: (?!...)
	next     *reNode
	id       int32 // index for the failure memo
}

// charSet is a set of characters: ASCII bits, class masks, ranges, negation.
type charSet struct {
	ascii    [2]uint64 // final membership of each ASCII byte (negation applied)
	classes  []classItem
	ranges   [][2]rune
	fold     bool // ranges and literals match case-insensitively
	negated  bool
	anyButNL bool // '.'
}

type classItem struct {
	mask uint16
	neg  bool // \P{..}, \S, \D
}

func (cs *charSet) rawHas(r rune) bool {
	if cs.anyButNL {
		return r != '\n'
	}
	var m uint16
	if len(cs.classes) > 0 {
		m = onigClass(r)
	}
	for _, c := range cs.classes {
		if (m&c.mask != 0) != c.neg {
			return true
		}
	}
	if cs.inRanges(r) {
		return true
	}
	if cs.fold && r >= 0 {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if cs.inRanges(f) {
				return true
			}
		}
	}
	return false
}

func (cs *charSet) inRanges(r rune) bool {
	for _, rg := range cs.ranges {
		if r >= rg[0] && r <= rg[1] {
			return true
		}
	}
	return false
}

// finish fills the ASCII table once the set is complete.
func (cs *charSet) finish() {
	for b := rune(0); b < 128; b++ {
		if cs.rawHas(b) != cs.negated {
			cs.ascii[b>>6] |= 1 << (b & 63)
		}
	}
}

// matchAt reports whether the character at s[i] is in the set, and its width.
// An invalid UTF-8 byte is a character of width 1 in no class and no range.
func (cs *charSet) matchAt(s string, i int) (bool, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return cs.ascii[c>>6]&(1<<(c&63)) != 0, 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w <= 1 {
		r = -1
	}
	return cs.rawHas(r) != cs.negated, w
}

// Regex is a compiled split pattern.
type Regex struct {
	src   string
	start *reNode
}

// compileRegex parses pattern in Oniguruma's syntax, refusing what is outside
// the subset with an error wrapping errRegexUnsupported.
func compileRegex(pattern string) (*Regex, error) {
	if len(pattern) > maxRegexLen {
		return nil, fmt.Errorf("pattern of %d bytes, over the %d-byte limit: %w", len(pattern), maxRegexLen, errRegexUnsupported)
	}
	if !utf8.ValidString(pattern) {
		return nil, fmt.Errorf("pattern is not valid UTF-8")
	}
	p := &reParser{src: pattern}
	ast, err := p.parseAlt(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.src) {
		return nil, fmt.Errorf("unbalanced ')' at byte %d", p.pos)
	}
	if ast.nullable() {
		return nil, fmt.Errorf("the pattern can match the empty string: %w", errRegexUnsupported)
	}
	accept := &reNode{kind: reAccept}
	nodes := 0
	start, err := ast.compile(accept, &nodes)
	if err != nil {
		return nil, err
	}
	return &Regex{src: pattern, start: start}, nil
}

// find returns the first match at or after i: its start and end, or -1, -1.
func (re *Regex) find(s string, i int) (int, int) {
	st := reState{s: s, budget: 1024 + 32*(len(s)-i)}
	for ; i < len(s); i++ {
		if st.attempt(re.start, i) {
			return i, st.end
		}
		// Advance by a whole character, as Oniguruma's search does.
		if s[i] >= utf8.RuneSelf {
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w - 1
		}
	}
	return -1, -1
}

// reState is one search over s. Every run(n, i) is a pure function of the
// node and the position (look-aheads and loops included), so once a search
// has taken more than its budget of steps it remembers each (node, position)
// that failed: a pattern that would backtrack exponentially then costs at most
// nodes x positions, and the result is the same.
type reState struct {
	s      string
	end    int
	steps  int
	budget int
	memo   map[uint64]struct{}
}

// attempt matches from exactly i.
func (st *reState) attempt(start *reNode, i int) bool { return st.run(start, i) }

func memoKey(n *reNode, i int) uint64 { return uint64(n.id)<<40 | uint64(i) }

func (st *reState) run(n *reNode, i int) bool {
	if st.memo == nil && st.steps > st.budget {
		// From here on, remember failures (valid whenever they are recorded).
		st.memo = map[uint64]struct{}{}
	}
	if st.memo != nil {
		if _, failed := st.memo[memoKey(n, i)]; failed {
			return false
		}
		if st.runNode(n, i) {
			return true
		}
		st.memo[memoKey(n, i)] = struct{}{}
		return false
	}
	return st.runNode(n, i)
}

func (st *reState) runNode(n *reNode, i int) bool {
	for {
		st.steps++
		switch n.kind {
		case reAccept:
			st.end = i
			return true
		case reChar:
			if i >= len(st.s) {
				return false
			}
			ok, w := n.set.matchAt(st.s, i)
			if !ok {
				return false
			}
			i += w
			n = n.next
		case reAlt:
			for _, a := range n.alts[:len(n.alts)-1] {
				if st.run(a, i) {
					return true
				}
			}
			return st.run(n.alts[len(n.alts)-1], i)
		case reRep:
			return st.runRep(n, i)
		case reLoop:
			return st.runLoop(n, i, 0, -1)
		case reLook:
			end := st.end
			ok := st.run(n.body, i)
			st.end = end
			if ok == n.negate {
				return false
			}
			n = n.next
		}
	}
}

// runRep matches a repeated single-character set: greedy takes the most and
// gives back one character at a time; lazy the reverse.
func (st *reState) runRep(n *reNode, i int) bool {
	var stack [32]int
	ends := stack[:0]
	ends = append(ends, i)
	pos := i
	for n.max < 0 || len(ends)-1 < n.max {
		if pos >= len(st.s) {
			break
		}
		ok, w := n.set.matchAt(st.s, pos)
		if !ok {
			break
		}
		pos += w
		ends = append(ends, pos)
		if !n.greedy && len(ends)-1 >= n.min {
			if st.run(n.next, ends[len(ends)-2]) && len(ends)-2 >= n.min {
				return true
			}
		}
	}
	if !n.greedy {
		return len(ends)-1 >= n.min && st.run(n.next, ends[len(ends)-1])
	}
	for k := len(ends) - 1; k >= n.min; k-- {
		if st.run(n.next, ends[k]) {
			return true
		}
	}
	return false
}

// runLoop matches body repeated between min and max times, then next; last is
// where the previous iteration started (an empty iteration ends the loop).
func (st *reState) runLoop(n *reNode, i, count, last int) bool {
	canIterate := (n.max < 0 || count < n.max) && !(count >= n.min && i == last)
	if count < n.min {
		return canIterate && st.loopBody(n, i, count)
	}
	if n.greedy {
		return (canIterate && st.loopBody(n, i, count)) || st.run(n.next, i)
	}
	return st.run(n.next, i) || (canIterate && st.loopBody(n, i, count))
}

// loopBody tries each end of one more iteration from i, in backtracking order.
func (st *reState) loopBody(n *reNode, i, count int) bool {
	var buf [16]int // on the stack: a body rarely has more ends
	for _, e := range st.appendBodyEnds(buf[:0], n.body, i) {
		if st.runLoop(n, e, count+1, i) {
			return true
		}
	}
	return false
}

// appendBodyEnds appends to ends, in backtracking order, every end at which a
// loop body (a chain of characters and alternations, checked at compile time)
// matches from i.
func (st *reState) appendBodyEnds(ends []int, n *reNode, i int) []int {
	for {
		st.steps++
		switch n.kind {
		case reAccept:
			return append(ends, i)
		case reChar:
			if i >= len(st.s) {
				return ends
			}
			ok, w := n.set.matchAt(st.s, i)
			if !ok {
				return ends
			}
			i += w
			n = n.next
		case reAlt:
			for _, a := range n.alts {
				ends = st.appendBodyEnds(ends, a, i)
			}
			return ends
		default:
			return ends // not reached: compile refuses other nodes in a loop body
		}
	}
}

func isRegexUnsupported(err error) bool { return errors.Is(err, errRegexUnsupported) }
