package stage

import (
	"strings"
	"testing"
)

type streamedIn struct {
	In  string `arg:"" input:"text" stream:""`
	Tok string `input:"tokenizer"`
	Out string `output:""`
	nopBuild
}

type streamNoInput struct {
	Out string `output:""`
	X   string `stream:""`
	nopBuild
}

// The stream:"" tag reaches the engine as Flag.Stream, only on input flags.
func TestSpecOfStream(t *testing.T) {
	inputs := []Input{{Name: "text", Type: "text/v1"}, {Name: "tokenizer", Type: "tokenizer/v1"}}
	sp, err := SpecOf(Def{Kind: "x", Inputs: inputs, New: func() Options { return &streamedIn{} }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		input  string
		stream bool
	}{{"text", true}, {"tokenizer", false}} {
		f, ok := sp.InputFlag(c.input)
		if !ok || f.Stream != c.stream {
			t.Errorf("input %s: flag %+v (found %v), want Stream %v", c.input, f, ok, c.stream)
		}
	}
	_, err = SpecOf(Def{Kind: "x", New: func() Options { return &streamNoInput{} }})
	if err == nil || !strings.Contains(err.Error(), `--x is tagged stream:"" but is no input`) {
		t.Errorf("stream tag on a flag that is no input: %v", err)
	}
}
