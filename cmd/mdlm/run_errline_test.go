package main

import (
	"bytes"
	"strings"
	"testing"
)

// Issue 24: an in-process stage's error carries its last "mdlm: ..." line,
// bounded, and everything it wrote still reaches the terminal.
func TestLastErrLine(t *testing.T) {
	long := strings.Repeat("x", 2*maxErrLine)
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"none", []string{"time=1 level=INFO msg=hi\n"}, ""},
		{"one", []string{"level=INFO\n", "mdlm: pack: tokens has no blocks\n"}, "pack: tokens has no blocks"},
		{"last wins", []string{"mdlm: first\nmdlm: second\nlevel=INFO done\n"}, "second"},
		{"split writes", []string{"md", "lm: a", "b", "c\n"}, "abc"},
		{"no newline", []string{"mdlm: at the end"}, "at the end"},
		{"not at line start", []string{"x mdlm: no\n"}, ""},
		{"bounded", []string{"mdlm: " + long + "\n"}, long[:maxErrLine-len("mdlm: ")] + " ..."},
		{"invalid utf8", []string{"mdlm: a\xffb\n"}, "a?b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var term bytes.Buffer
			l := &lastErrLine{w: &term}
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write: %d %v", n, err)
				}
			}
			if got := l.Line(); got != tc.want {
				t.Errorf("Line() = %.80q, want %.80q", got, tc.want)
			}
			if term.String() != strings.Join(tc.writes, "") {
				t.Errorf("the terminal got %.80q", term.String())
			}
		})
	}
}

func TestStageExitError(t *testing.T) {
	if got := stageExitError("pack", 1, "pack: has no blocks").Error(); got != "mdlm pack exited 1: pack: has no blocks" {
		t.Errorf("with a line: %q", got)
	}
	if got := stageExitError("pack", 2, "").Error(); got != "mdlm pack exited 2" {
		t.Errorf("without a line: %q", got)
	}
}
