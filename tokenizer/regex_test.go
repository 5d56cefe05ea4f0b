package tokenizer

import (
	"errors"
	"strings"
	"testing"
)

// splitAll lists the pieces of s under Isolated splitting with re.
func splitAll(re *Regex, s string) []string {
	var out []string
	prev := 0
	for i := 0; i < len(s); {
		a, b := re.find(s, i)
		if a < 0 {
			break
		}
		if a > prev {
			out = append(out, s[prev:a])
		}
		out = append(out, s[a:b])
		prev, i = b, b
	}
	if prev < len(s) {
		out = append(out, s[prev:])
	}
	return out
}

// TestRegexSplits checks leftmost-first matching, look-ahead, case folding and
// classes on cases whose Oniguruma result is known (the GPT-2 and Llama 3
// patterns' behaviour in Hugging Face tokenizers).
func TestRegexSplits(t *testing.T) {
	llama3 := `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	cases := []struct {
		pattern, in string
		want        []string
	}{
		{llama3, "Hello world", []string{"Hello", " world"}},
		{llama3, "I'M here  now", []string{"I", "'M", " here", " ", " now"}},
		{llama3, "x'ſ", []string{"x", "'ſ"}},
		{llama3, "1234567", []string{"123", "456", "7"}},
		{llama3, "a \n\n b", []string{"a", " \n\n", " b"}},
		{llama3, "a   ", []string{"a", "   "}},
		{`\p{N}{1,3}`, "ab12345c", []string{"ab", "123", "45", "c"}},
		{`a|ab`, "abab", []string{"a", "b", "a", "b"}},
		{`ab|a`, "abab", []string{"ab", "ab"}},
		{`a+?b`, "aaab", []string{"aaab"}},
		{`[^a-c]+`, "xxaxy", []string{"xx", "a", "xy"}},
		{`(?:ab){2}`, "abababa", []string{"abab", "aba"}},
		{`x(?=y)`, "xxy", []string{"x", "x", "y"}},
		{`\x41+`, "BAAB", []string{"B", "AA", "B"}},
		// BLOOM's split pattern: a class nested in a negated one is a union.
		{` ?[^(\s|[.,!?…。，、।۔،])]+`, "Hi, you (all)|ok… 好。", []string{"Hi", ",", " you", " (", "all", ")|", "ok", "…", " 好", "。"}},
		{`[a[b[c]]d]+`, "abcdexa", []string{"abcd", "ex", "a"}},
	}
	for _, c := range cases {
		re, err := compileRegex(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		got := splitAll(re, c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%q on %q = %q, want %q", c.pattern, c.in, got, c.want)
		}
	}
}

// TestRegexRefused: what is outside the subset is refused, never approximated.
func TestRegexRefused(t *testing.T) {
	for _, p := range []string{`(?<=a)b`, `\w+`, `a*`, `^a`, `a$`, `\bx`, `(a|b)*`, `(?i:ss)`, `(?i)a`, `a++`,
		`[[:alpha:]]`, `[a[^b]]`, `[a[]]`, `[a[b]`, `[a&&b]`, `\1`, `(a+)+`, `\p{Greek}`, `(?i:\p{L})`, `x{2,1}`, `{`} {
		if _, err := compileRegex(p); !errors.Is(err, errRegexUnsupported) && err == nil {
			t.Errorf("%q compiled", p)
		}
	}
}

// TestRegexHostileBacktracking: a pattern that backtracks exponentially in a
// plain backtracker finishes (the failure memo) with the same answer.
func TestRegexHostileBacktracking(t *testing.T) {
	re, err := compileRegex(`(?:a|a){4}\s*\s*\s*\s*\s*\s*\s*\s*b`)
	if err != nil {
		t.Fatal(err)
	}
	s := "aaaa" + strings.Repeat(" ", 300) + "c"
	if a, _ := re.find(s, 0); a != -1 {
		t.Errorf("found a match at %d", a)
	}
	if a, b := re.find("aaaa  b", 0); a != 0 || b != 7 {
		t.Errorf("find = %d, %d", a, b)
	}
}
