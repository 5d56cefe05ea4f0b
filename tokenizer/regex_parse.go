package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

type astOp uint8

// maxGroupRepeat bounds the repetition of a group: real patterns only make a
// group optional, and a loop over alternatives is explored without the memo.
const maxGroupRepeat = 4

const (
	astChar astOp = iota
	astConcat
	astAlt
	astRepeat
	astLook
)

// reAST is a parsed pattern before compilation.
type reAST struct {
	op       astOp
	set      *charSet
	subs     []*reAST
	min, max int
	greedy   bool
	negate   bool
	fold     bool // a literal inside (?i:...)
	lit      rune // the literal of an astChar made from one character, or -1
}

func (a *reAST) nullable() bool {
	switch a.op {
	case astChar:
		return false
	case astConcat:
		for _, s := range a.subs {
			if !s.nullable() {
				return false
			}
		}
		return true
	case astAlt:
		for _, s := range a.subs {
			if s.nullable() {
				return true
			}
		}
		return false
	case astRepeat:
		return a.min == 0 || a.subs[0].nullable()
	}
	return true // look-ahead is zero-width
}

// simple reports whether a is only characters, concatenations and alternations.
func (a *reAST) simple() bool {
	if a.op == astRepeat || a.op == astLook {
		return false
	}
	for _, s := range a.subs {
		if !s.simple() {
			return false
		}
	}
	return true
}

func (a *reAST) compile(next *reNode, count *int) (*reNode, error) {
	if *count++; *count > maxRegexNodes {
		return nil, fmt.Errorf("more than %d nodes: %w", maxRegexNodes, errRegexUnsupported)
	}
	n, err := a.compileNode(next, count)
	if n != nil && n.id == 0 {
		*count++ // a fresh id: the children took the ones before
		n.id = int32(*count)
	}
	return n, err
}

func (a *reAST) compileNode(next *reNode, count *int) (*reNode, error) {
	switch a.op {
	case astChar:
		return &reNode{kind: reChar, set: a.set, next: next}, nil
	case astConcat:
		var err error
		for i := len(a.subs) - 1; i >= 0; i-- {
			if next, err = a.subs[i].compile(next, count); err != nil {
				return nil, err
			}
		}
		return next, nil
	case astAlt:
		n := &reNode{kind: reAlt}
		for _, s := range a.subs {
			c, err := s.compile(next, count)
			if err != nil {
				return nil, err
			}
			n.alts = append(n.alts, c)
		}
		return n, nil
	case astRepeat:
		sub := a.subs[0]
		if sub.op == astChar {
			return &reNode{kind: reRep, set: sub.set, min: a.min, max: a.max, greedy: a.greedy, next: next}, nil
		}
		if !sub.simple() {
			return nil, fmt.Errorf("a quantified group holding a quantifier or look-ahead: %w", errRegexUnsupported)
		}
		if a.max < 0 || a.max > maxGroupRepeat {
			return nil, fmt.Errorf("a group repeated more than %d times: %w", maxGroupRepeat, errRegexUnsupported)
		}
		body, err := sub.compile(&reNode{kind: reAccept}, count)
		if err != nil {
			return nil, err
		}
		return &reNode{kind: reLoop, body: body, min: a.min, max: a.max, greedy: a.greedy, next: next}, nil
	case astLook:
		body, err := a.subs[0].compile(&reNode{kind: reAccept}, count)
		if err != nil {
			return nil, err
		}
		return &reNode{kind: reLook, body: body, negate: a.negate, next: next}, nil
	}
	return nil, fmt.Errorf("internal: unknown node")
}

// reParser reads Oniguruma's syntax (the subset in regex.go).
type reParser struct {
	src  string
	pos  int
	fold bool
}

func (p *reParser) unsupported(what string) error {
	return fmt.Errorf("%s at byte %d: %w", what, p.pos, errRegexUnsupported)
}

func (p *reParser) peek() (rune, int) {
	if p.pos >= len(p.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(p.src[p.pos:])
}

func (p *reParser) parseAlt(depth int) (*reAST, error) {
	if depth > maxRegexDepth {
		return nil, p.unsupported(fmt.Sprintf("groups nested deeper than %d", maxRegexDepth))
	}
	var alts []*reAST
	for {
		c, err := p.parseConcat(depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, c)
		if r, _ := p.peek(); r != '|' {
			break
		}
		p.pos++
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &reAST{op: astAlt, subs: alts}, nil
}

func (p *reParser) parseConcat(depth int) (*reAST, error) {
	var items []*reAST
	for {
		r, _ := p.peek()
		if r == -1 || r == '|' || r == ')' {
			break
		}
		atom, err := p.parseAtom(depth)
		if err != nil {
			return nil, err
		}
		if atom, err = p.parseQuantifier(atom); err != nil {
			return nil, err
		}
		items = append(items, atom)
	}
	if err := checkFoldedLiterals(items); err != nil {
		return nil, p.unsupported(err.Error())
	}
	if len(items) == 1 {
		return items[0], nil
	}
	return &reAST{op: astConcat, subs: items}, nil
}

// checkFoldedLiterals refuses case-insensitive literal runs that Oniguruma's
// multi-character case folding could match differently (ß ~ ss, ﬁ ~ fi, ...).
func checkFoldedLiterals(items []*reAST) error {
	for i := 0; i+1 < len(items); i++ {
		a, b := items[i], items[i+1]
		if a.op != astChar || b.op != astChar || !a.fold || !b.fold {
			continue
		}
		pair := strings.ToLower(string([]rune{a.lit, b.lit}))
		switch pair {
		case "ss", "st", "ff", "fi", "fl":
			return fmt.Errorf("case-insensitive %q (a multi-character case fold)", pair)
		}
	}
	return nil
}

func (p *reParser) parseAtom(depth int) (*reAST, error) {
	r, w := p.peek()
	switch r {
	case '(':
		return p.parseGroup(depth)
	case '[':
		p.pos++
		return p.parseClass()
	case '.':
		p.pos++
		cs := &charSet{anyButNL: true}
		cs.finish()
		return &reAST{op: astChar, set: cs, lit: -1}, nil
	case '\\':
		return p.parseEscapeAtom()
	case '^', '$':
		return nil, p.unsupported("anchor " + string(r))
	case '*', '+', '?', '{':
		return nil, p.unsupported("quantifier " + string(r) + " without a target")
	}
	if p.fold && r >= utf8.RuneSelf {
		return nil, p.unsupported("non-ASCII literal inside (?i:...)")
	}
	p.pos += w
	return p.literal(r), nil
}

func (p *reParser) literal(r rune) *reAST {
	cs := &charSet{ranges: [][2]rune{{r, r}}, fold: p.fold}
	cs.finish()
	return &reAST{op: astChar, set: cs, fold: p.fold, lit: r}
}

func (p *reParser) parseGroup(depth int) (*reAST, error) {
	p.pos++ // '('
	saved := p.fold
	defer func() { p.fold = saved }()
	look, negate := false, false
	switch {
	case strings.HasPrefix(p.src[p.pos:], "?:"):
		p.pos += 2
	case strings.HasPrefix(p.src[p.pos:], "?i:"):
		p.pos += 3
		p.fold = true
	case strings.HasPrefix(p.src[p.pos:], "?="):
		p.pos += 2
		look = true
	case strings.HasPrefix(p.src[p.pos:], "?!"):
		p.pos += 2
		look, negate = true, true
	case strings.HasPrefix(p.src[p.pos:], "?"):
		return nil, p.unsupported("group kind (?" + p.src[p.pos+1:min(p.pos+3, len(p.src))])
	}
	inner, err := p.parseAlt(depth + 1)
	if err != nil {
		return nil, err
	}
	if r, _ := p.peek(); r != ')' {
		return nil, fmt.Errorf("missing ')' at byte %d", p.pos)
	}
	p.pos++
	if look {
		return &reAST{op: astLook, subs: []*reAST{inner}, negate: negate}, nil
	}
	return inner, nil
}

// parseQuantifier applies a following *, +, ?, {n}, {n,}, {,m} or {n,m} (and a
// lazy '?') to atom.
func (p *reParser) parseQuantifier(atom *reAST) (*reAST, error) {
	r, _ := p.peek()
	lo, hi := 0, 0
	switch r {
	case '*':
		lo, hi = 0, -1
		p.pos++
	case '+':
		lo, hi = 1, -1
		p.pos++
	case '?':
		lo, hi = 0, 1
		p.pos++
	case '{':
		var ok bool
		if lo, hi, ok = p.parseBraces(); !ok {
			return nil, p.unsupported("'{' that is not a quantifier")
		}
	default:
		return atom, nil
	}
	if atom.op == astLook {
		return nil, p.unsupported("quantified look-ahead")
	}
	greedy := true
	switch r, _ := p.peek(); r {
	case '?':
		greedy = false
		p.pos++
	case '+':
		return nil, p.unsupported("possessive quantifier")
	}
	if r, _ := p.peek(); r == '*' || r == '+' || r == '?' || r == '{' {
		return nil, p.unsupported("stacked quantifiers")
	}
	return &reAST{op: astRepeat, subs: []*reAST{atom}, min: lo, max: hi, greedy: greedy}, nil
}

// parseBraces reads {n}, {n,}, {,m} or {n,m} (bounds up to 1000).
func (p *reParser) parseBraces() (int, int, bool) {
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return 0, 0, false
	}
	body := p.src[p.pos+1 : p.pos+end]
	a, b, comma := strings.Cut(body, ",")
	num := func(s string, def int) (int, bool) {
		if s == "" {
			return def, true
		}
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 0 && n <= 1000 && s[0] != '+'
	}
	lo, ok1 := num(a, 0)
	hi, ok2 := num(b, -1)
	if !comma {
		hi = lo
	}
	if !ok1 || !ok2 || (a == "" && b == "") || (a == "" && !comma) || (hi >= 0 && hi < lo) {
		return 0, 0, false
	}
	p.pos += end + 1
	return lo, hi, true
}

func (p *reParser) parseEscapeAtom() (*reAST, error) {
	cs := &charSet{fold: p.fold}
	lit, err := p.parseEscape(cs)
	if err != nil {
		return nil, err
	}
	if lit >= 0 {
		return p.literal(lit), nil
	}
	cs.finish()
	return &reAST{op: astChar, set: cs, lit: -1}, nil
}

// parseEscape reads the escape at p.pos ('\\' included): a literal character
// is returned, a class is added to cs (and -1 returned).
func (p *reParser) parseEscape(cs *charSet) (rune, error) {
	p.pos++ // '\\'
	r, w := p.peek()
	if r < 0 {
		return 0, fmt.Errorf("trailing '\\'")
	}
	p.pos += w
	switch r {
	case 't':
		return '\t', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 'f':
		return '\f', nil
	case 'v':
		return '\v', nil
	case 'a':
		return 7, nil
	case 'e':
		return 27, nil
	case 's', 'S':
		return -1, p.addClass(cs, clsSpace, r == 'S')
	case 'd', 'D':
		return -1, p.addClass(cs, clsNd, r == 'D')
	case 'p', 'P':
		return -1, p.parseProperty(cs, r == 'P')
	case 'x':
		return p.parseHex()
	}
	if r < utf8.RuneSelf && !isASCIIAlnum(byte(r)) {
		return r, nil // an escaped punctuation or space character
	}
	return 0, p.unsupported(fmt.Sprintf("escape \\%c", r))
}

func (p *reParser) addClass(cs *charSet, mask uint16, neg bool) error {
	if p.fold {
		return p.unsupported("a character class inside (?i:...)")
	}
	cs.classes = append(cs.classes, classItem{mask: mask, neg: neg})
	return nil
}

func (p *reParser) parseProperty(cs *charSet, neg bool) error {
	if !strings.HasPrefix(p.src[p.pos:], "{") {
		return p.unsupported("\\p without {...}")
	}
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return fmt.Errorf("unterminated \\p{ at byte %d", p.pos)
	}
	name := p.src[p.pos+1 : p.pos+end]
	if rest, ok := strings.CutPrefix(name, "^"); ok {
		name, neg = rest, !neg
	}
	mask, ok := onigClassNames[name]
	if !ok {
		return p.unsupported(fmt.Sprintf("property \\p{%s}", name))
	}
	p.pos += end + 1
	return p.addClass(cs, mask, neg)
}

// parseHex reads \xHH or \x{H...} (after the x).
func (p *reParser) parseHex() (rune, error) {
	var digits string
	if strings.HasPrefix(p.src[p.pos:], "{") {
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return 0, fmt.Errorf("unterminated \\x{ at byte %d", p.pos)
		}
		digits = p.src[p.pos+1 : p.pos+end]
		p.pos += end + 1
	} else {
		n := 0
		for n < 2 && p.pos+n < len(p.src) && isHexDigit(p.src[p.pos+n]) {
			n++
		}
		digits = p.src[p.pos : p.pos+n]
		p.pos += n
		if n != 2 {
			return 0, p.unsupported("\\x without two hex digits")
		}
	}
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil || v > utf8.MaxRune || (v >= 0xD800 && v <= 0xDFFF) || (len(digits) == 2 && v >= 0x80) {
		return 0, p.unsupported("\\x" + digits)
	}
	return rune(v), nil
}

func isHexDigit(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isASCIIAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// parseClass reads a bracket expression after its '['. A class nested in it
// without negation ("[^(\s|[.,!?])]", BLOOM's split pattern) is a union with
// the rest, as in Oniguruma, so its members join the outer set; nested
// negated classes and POSIX brackets are refused.
func (p *reParser) parseClass() (*reAST, error) {
	cs := &charSet{fold: p.fold}
	if strings.HasPrefix(p.src[p.pos:], "^") {
		cs.negated = true
		p.pos++
	}
	first, depth := true, 1 // depth: brackets open, the outer one included
	for {
		r, _ := p.peek()
		switch {
		case r < 0:
			return nil, fmt.Errorf("unterminated '[' class")
		case r == ']' && first:
			return nil, p.unsupported("']' first in a class")
		case r == ']' && depth > 1:
			p.pos++
			depth--
			continue
		case r == ']':
			p.pos++
			cs.finish()
			return &reAST{op: astChar, set: cs, lit: -1}, nil
		case r == '[' && (strings.HasPrefix(p.src[p.pos:], "[:") || strings.HasPrefix(p.src[p.pos:], "[^")):
			return nil, p.unsupported("negated nested class or POSIX bracket")
		case r == '[':
			if depth == maxRegexDepth {
				return nil, p.unsupported(fmt.Sprintf("classes nested deeper than %d", maxRegexDepth))
			}
			p.pos++
			first, depth = true, depth+1
			continue
		case r == '&' && strings.HasPrefix(p.src[p.pos:], "&&"):
			return nil, p.unsupported("class intersection &&")
		}
		first = false
		lo, isChar, err := p.classAtom(cs)
		if err != nil {
			return nil, err
		}
		if !isChar {
			continue
		}
		// A range a-b (a '-' before ']' is a literal).
		if strings.HasPrefix(p.src[p.pos:], "-") && !strings.HasPrefix(p.src[p.pos:], "-]") {
			p.pos++
			hi, hiIsChar, err := p.classAtom(cs)
			if err != nil {
				return nil, err
			}
			if !hiIsChar || hi < lo {
				return nil, p.unsupported("class range")
			}
			cs.ranges = append(cs.ranges, [2]rune{lo, hi})
			continue
		}
		cs.ranges = append(cs.ranges, [2]rune{lo, lo})
	}
}

// classAtom reads one class member: a character (returned, true) or a class
// escape (added to cs, false).
func (p *reParser) classAtom(cs *charSet) (rune, bool, error) {
	r, w := p.peek()
	if r == '\\' {
		lit, err := p.parseEscape(cs)
		if err != nil {
			return 0, false, err
		}
		return lit, lit >= 0, nil
	}
	if p.fold && r >= utf8.RuneSelf {
		return 0, false, p.unsupported("non-ASCII character inside (?i:...)")
	}
	p.pos += w
	return r, true, nil
}
