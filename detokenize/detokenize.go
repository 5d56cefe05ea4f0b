// Package detokenize holds the reference's detokenizers (dataloader.py:
// wt_detokenizer, ptb_detokenizer, lm1b_detokenizer, lambada_detokenizer),
// applied to raw text before tokenization. They are byte-exact ports, quirks
// included: Python's \s, \w and $ are spelled out for Go's regexp (RE2 reads \s
// and \w as ASCII only, and $ without a trailing-newline allowance).
package detokenize

import (
	"regexp"
	"strings"
)

// Func rewrites one text.
type Func func(string) string

// pySpace is Python's \s on str patterns (Unicode whitespace).
const pySpace = `[\t\n\v\f\r \x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]`

// pyWord is Python's \w on str patterns: letters, numbers and underscore.
const pyWord = `[\p{L}\p{N}_]`

var (
	wtNoOpDigit = regexp.MustCompile(`/' [0-9]/`) // the reference's regex literally matches "/' d/"
	wtParens    = regexp.MustCompile(`\(` + pySpace + `*([^)]*?)` + pySpace + `*\)`)
	wtBrackets  = regexp.MustCompile(`\[` + pySpace + `*([^\]]*?)` + pySpace + `*\]`)
	wtBraces    = regexp.MustCompile(`\{` + pySpace + `*([^}]*?)` + pySpace + `*\}`)
	wtDQuotes   = regexp.MustCompile(`"` + pySpace + `*([^"]*?)` + pySpace + `*"`)
	wtSQuotes   = regexp.MustCompile(`'` + pySpace + `*([^']*?)` + pySpace + `*'`)
)

// WikiText is wt_detokenizer.
func WikiText(s string) string {
	s = strings.ReplaceAll(s, "s '", "s'")
	s = wtNoOpDigit.ReplaceAllLiteralString(s, "/'[0-9]/")
	for _, r := range [][2]string{{" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."},
		{" : ", ": "}, {" ; ", "; "}, {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	s = wtParens.ReplaceAllString(s, "(${1})")
	s = wtBrackets.ReplaceAllString(s, "[${1}]")
	s = wtBraces.ReplaceAllString(s, "{${1}}")
	s = wtDQuotes.ReplaceAllString(s, `"${1}"`)
	s = wtSQuotes.ReplaceAllString(s, "'${1}'")
	for _, r := range [][2]string{{"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="},
		{" \u00b0 ", "\u00b0"}, {" \n", "\n"}, {"\n ", "\n"}, {" N ", " 1 "}, {" 's", "'s"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// PTB is ptb_detokenizer.
func PTB(s string) string {
	for _, r := range [][2]string{{" 's", "'s"}, {"s ' ", "s' "}, {" n't", "n't"}, {" \n ", "\n"}, {`\/`, "/"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	for i := 0; i < 10; i++ {
		s = strings.ReplaceAll(s, " N ", " 1 ")
	}
	for _, r := range [][2]string{{"$ 1", "$1"}, {"# 1", "#1"}, {"<unk>", "?"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

var (
	lmApos       = regexp.MustCompile(` '(` + pyWord + `+)`)
	lmPeriod     = regexp.MustCompile(` (` + pyWord + `+) \. `)
	lmPeriodEnd  = regexp.MustCompile(` (` + pyWord + `+) \.(\n?)$`) // Python's $ also matches before a final \n
	lmQuestEnd   = regexp.MustCompile(` \?(\n?)$`)
	lmExclaimEnd = regexp.MustCompile(` !(\n?)$`)
	lmDQuotes    = regexp.MustCompile(`" ([^"]+) "`)
	lmSQuotes    = regexp.MustCompile(`' ([^']+) '`)
	lmParens     = regexp.MustCompile(`\( ([^()]+) \)`)
	lmBrackets   = regexp.MustCompile(`\[ ([^\[\]]+) \]`)
)

// LM1B is lm1b_detokenizer.
func LM1B(s string) string {
	s = strings.ReplaceAll(s, "http : / / ", "http://")
	s = strings.ReplaceAll(s, "https : / / ", "https://")
	s = lmApos.ReplaceAllString(s, "'${1}")
	s = lmPeriod.ReplaceAllString(s, " ${1}. ")
	s = lmPeriodEnd.ReplaceAllString(s, " ${1}.${2}")
	s = strings.ReplaceAll(s, " ? ", "? ")
	s = lmQuestEnd.ReplaceAllString(s, "?${1}")
	s = strings.ReplaceAll(s, " ! ", "! ")
	s = lmExclaimEnd.ReplaceAllString(s, "!${1}")
	for _, r := range [][2]string{{" , ", ", "}, {" : ", ": "}, {" ; ", "; "}, {" / ", "/"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	s = lmDQuotes.ReplaceAllString(s, `"${1}"`)
	s = lmSQuotes.ReplaceAllString(s, "'${1}'")
	s = lmParens.ReplaceAllString(s, "(${1})")
	s = lmBrackets.ReplaceAllString(s, "[${1}]")
	s = strings.ReplaceAll(s, "$ ", "$")
	s = strings.ReplaceAll(s, "£ ", "£")
	return s
}

// Lambada is lambada_detokenizer: curly double quotes become straight, and the
// text is stripped (Python str.strip: Unicode whitespace) and prefixed with "\n".
func Lambada(s string) string {
	s = strings.ReplaceAll(s, "\u201c", `"`)
	s = strings.ReplaceAll(s, "\u201d", `"`)
	return "\n" + strings.TrimFunc(s, isPySpace)
}

func isPySpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r == ' ', r >= 0x1c && r <= 0x1f, r == 0x85, r == 0xa0, r == 0x1680,
		r >= 0x2000 && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// For returns the detokenizer the reference applies to a dataset (nil: none):
// wikitext* → wt, ptb → ptb, lm1b* → lm1b, lambada → lambada,
// scientific_papers* → wt then lm1b; others (OpenWebText, ag_news, text8) none.
func For(dataset string) Func {
	switch {
	case strings.HasPrefix(dataset, "wikitext"):
		return WikiText
	case dataset == "ptb":
		return PTB
	case strings.HasPrefix(dataset, "lm1b"):
		return LM1B
	case dataset == "lambada":
		return Lambada
	case strings.HasPrefix(dataset, "scientific_papers"):
		return func(s string) string { return LM1B(WikiText(s)) }
	}
	return nil
}
