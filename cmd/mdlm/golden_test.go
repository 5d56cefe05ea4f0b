package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/stages"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ that differ")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	want, err := os.ReadFile(path)
	if *update && !bytes.Equal(want, got) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", path)
		return
	}
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (go test -run %s -update rewrites it):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// The stage contract as the pipeline engine sees it, derived from each
// stage's Options: kind, version, inputs, output, and every `with:` key with
// its role in the cache key. A change to a stage's flags shows here, and so
// in review, together with the version bump it may need.
func TestStageSpecsGolden(t *testing.T) {
	var b strings.Builder
	reg := stages.Registry()
	for _, kind := range reg.Kinds() {
		sp := reg[kind]
		fmt.Fprintf(&b, "%s v%d -> %s", kind, sp.Version, sp.Output)
		if sp.Shardable {
			b.WriteString(" (shards)")
		}
		b.WriteString("\n")
		for _, in := range sp.Inputs {
			f, _ := sp.InputFlag(in.Name)
			fmt.Fprintf(&b, "  input %s: %s via --%s\n", in.Name, in.Type, f.Name)
		}
		for _, f := range sp.Flags {
			if !f.Pipeline || f.Input != "" {
				continue
			}
			var notes []string
			if f.Positional {
				notes = append(notes, "positional")
			}
			if f.Cosmetic {
				notes = append(notes, "cosmetic")
			}
			if f.Digest != "" {
				notes = append(notes, "digest:"+f.Digest)
			}
			if f.Default != "" {
				notes = append(notes, "default "+f.Default)
			}
			fmt.Fprintf(&b, "  with %s", f.Name)
			if len(notes) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
			}
			b.WriteString("\n")
		}
	}
	golden(t, "stages.golden", []byte(b.String()))
}

// mdlm --help and every command's --help.
func TestHelpGolden(t *testing.T) {
	t.Setenv("COLUMNS", "100")
	cmds := [][]string{{}, {"run"}, {"export", "kubernetes"}, {"checkpoint", "import"}, {"checkpoint", "export"}, {"checkpoint", "inspect"}}
	for _, d := range stages.All {
		cmds = append(cmds, []string{d.Kind})
	}
	for _, c := range cmds {
		out, errOut, code := mdlm(t, append(c, "--help")...)
		if code != 0 || errOut != "" {
			t.Errorf("mdlm %v --help: exit %d, stderr %q", c, code, errOut)
		}
		name := "mdlm"
		if len(c) > 0 {
			name = strings.Join(c, "-")
		}
		golden(t, filepath.Join("help", name+".golden"), []byte(out))
	}
}

// The demo pipeline's plan as JSON: pure JSON on standard output, the same
// keys, arguments and reasons. The cache directory is replaced by CACHE.
func TestDemoPlanGolden(t *testing.T) {
	cache := t.TempDir()
	// A copy of the pipeline file, so that no lock file of an earlier run
	// changes the reasons; its paths are relative to the repository root.
	demo, err := os.ReadFile(filepath.Join("..", "..", "pipelines", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "demo.yaml")
	os.WriteFile(file, demo, 0o644)
	wd, _ := os.Getwd()
	t.Chdir(filepath.Join("..", ".."))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"run", file, "--dry-run", "--json", "--cache-dir", cache}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("standard output is not JSON: %v\n%s", err, out.String())
	}
	got = replaceStrings(got, cache, "CACHE")
	pretty, _ := json.MarshalIndent(got, "", "  ")
	t.Chdir(wd)
	path := filepath.Join("testdata", "demo-plan.golden.json")
	if *update {
		golden(t, "demo-plan.golden.json", append(pretty, '\n'))
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan differs from %s (go test -run %s -update rewrites it):\n%s", path, t.Name(), pretty)
	}
}

func replaceStrings(v any, old, new string) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, old, new)
	case []any:
		for i := range x {
			x[i] = replaceStrings(x[i], old, new)
		}
	case map[string]any:
		for k := range x {
			x[k] = replaceStrings(x[k], old, new)
		}
	}
	return v
}
