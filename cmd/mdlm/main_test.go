package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/internal/reffix"
)

func mdlm(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// mdlmLogged returns a runner of mdlm commands that fails the test on a
// non-zero exit and appends both outputs to logs (to check what is logged).
func mdlmLogged(t *testing.T, logs *bytes.Buffer) func(args ...string) {
	return func(args ...string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		logs.Write(out.Bytes())
		logs.Write(errb.Bytes())
		if code != 0 {
			t.Fatalf("mdlm %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
}

// What the command line refuses or prints without reading a file: no
// fixtures needed.
func TestCLIParse(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "dit.safetensors") // never opened: parsing fails first
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--help"}, 0, "checkpoint import"},
		{[]string{"version"}, 0, "github.com/gomlx/gomlx v0.28.16"},
		{[]string{"checkpoint", "import", in}, 2, "--out"},
		{[]string{"checkpoint", "import", "--noise", "polynomial", in, "-o", filepath.Join(dir, "x")}, 2, "--noise"},
		{[]string{"sample", "--checkpoint", filepath.Join(dir, "ck"), "-o", filepath.Join(dir, "x"), "--sampler", "euler"}, 2, "--sampler"},
		{[]string{"train", "--data", dir}, 2, "--out"},
		{[]string{"nosuchstage"}, 2, "unexpected argument"},
	} {
		out, errOut, code := mdlm(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.contains) {
			t.Errorf("mdlm %s = exit %d, output:\n%s%s\nwant exit %d containing %q", strings.Join(c.args, " "), code, out, errOut, c.code, c.contains)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a refused command created its output")
	}
}

// Import, inspect, export and sample on the reference fixtures.
func TestCLI(t *testing.T) {
	fx := reffix.All(t)[0]
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	exported := filepath.Join(dir, "dit.safetensors")
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"checkpoint", "import", filepath.Join(fx.Dir, "dit.safetensors"), "-o", ck}, 0, ""},
		{[]string{"checkpoint", "inspect", ck}, 0, "verified"},
		{[]string{"checkpoint", "inspect", "--json", filepath.Join(fx.Dir, "ar.safetensors")}, 0, `"arch": "ar"`},
		{[]string{"checkpoint", "export", ck, "-o", exported, "--prefix", "backbone."}, 0, ""},
		{[]string{"checkpoint", "inspect", exported}, 0, "backbone.vocab_embed.embedding"},
		{[]string{"checkpoint", "import", filepath.Join(dir, "nope.safetensors"), "-o", filepath.Join(dir, "x")}, 1, "nope.safetensors"},
		{[]string{"sample", "--checkpoint", ck, "-o", filepath.Join(dir, "samples"), "--steps", "10", "--num", "2"}, 0, "msg=published stage=sample"},
		{[]string{"sample", "--checkpoint", ck, "-o", filepath.Join(dir, "x"), "--sampler", "ar"}, 1, "needs an AR model"},
	}
	for _, c := range cases {
		out, errOut, code := mdlm(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.contains) {
			t.Errorf("mdlm %s = exit %d, output:\n%s%s\nwant exit %d containing %q", strings.Join(c.args, " "), code, out, errOut, c.code, c.contains)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "samples", "samples.parquet")); err != nil {
		t.Errorf("mdlm sample wrote no parquet table: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a failed import created its output")
	}
}
