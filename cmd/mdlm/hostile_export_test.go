package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Issue 19 review: `export kubernetes -o` replaced any file, the pipeline it
// read included, and a pipeline name with newlines wrote YAML documents of its
// own into the stream that kubectl applies.
func TestHostileKubernetesExport(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	const stages = "stages:\n  text: {run: download, with: {sources: [in.txt]}}\n"
	pipe := "version: 1\nname: k8s\n" + stages
	evil := "version: 1\nname: \"x\\n---\\napiVersion: v1\\nkind: Pod\\nmetadata: {name: evil}\\n---\\n#\"\n" + stages
	os.WriteFile("evil.yaml", []byte(evil), 0o644)
	if _, stderr, code := mdlm(t, "export", "kubernetes", "--image", "i", "--claim", "c", "evil.yaml"); code == 0 || !strings.Contains(stderr, "pipeline name") {
		t.Errorf("a pipeline name with newlines: exit %d, %s", code, stderr)
	}
	os.WriteFile("p.yaml", []byte(pipe), 0o644)
	os.WriteFile("in.txt", []byte("hello\n"), 0o644)
	os.WriteFile("user.yaml", []byte("precious"), 0o644)
	export := func(out string) error {
		_, stderr, code := mdlm(t, "export", "kubernetes", "--image", "i", "--claim", "c", "p.yaml", "-o", out)
		if code != 0 {
			return errors.New(stderr)
		}
		return nil
	}
	for _, c := range []struct{ out, want string }{
		{"user.yaml", "was not written by this mdlm command"},
		{"p.yaml", "is an input"},
	} {
		if err := export(c.out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-o %s: %v, want %q", c.out, err, c.want)
		}
	}
	for _, f := range []struct{ name, body string }{{"user.yaml", "precious"}, {"p.yaml", pipe}} {
		if b, _ := os.ReadFile(f.name); string(b) != f.body {
			t.Errorf("%s was replaced", f.name)
		}
	}
	for range 2 { // the second export replaces the first
		if err := export("jobs.yaml"); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "jobs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc["kind"] != "Job" {
			t.Errorf("the stream holds a %v of the pipeline name's making", doc["kind"])
		}
	}
}
