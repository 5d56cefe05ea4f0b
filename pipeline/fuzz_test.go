package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"gopkg.in/yaml.v3"
)

// FuzzLoad: any pipeline file is loaded or refused with an error, never a panic.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"version: 1\nname: x\nvars: {n: 2}\nstages:\n  a: {run: download, with: {sources: [c.txt]}}\n  b: {run: tokenize, inputs: {text: a}, shards: \"${n}\"}\n",
		"version: 1\nstages:\n  a: {run: pack, inputs: {tokens: a}}\n",
		"version: 1\nstages:\n  m: {run: train, inputs: {data: m}, slurm: {gres: gpu:1}, kubernetes: {nvidia.com/gpu: 1}}\n",
		"version: [1\n", "", "stages: 7",
		// issue 19: stage names that are paths (5), unknown keys (12),
		// duplicate stages, merge keys and a flow of stages.
		"version: 1\nstages:\n  ../../../x: {run: download, with: {sources: [c.txt]}}\n",
		"version: 1\nstagez:\n  a: {run: download}\n",
		"version: 1\nstages:\n  a: {run: download, whith: {sources: [c.txt]}}\n",
		"version: 1\nstages:\n  a: {run: download, with: {sources: [c.txt]}}\n  b: {run: tokenize, inputs: {text: a}, shard: 3}\n",
		"version: 1\nstages:\n  a: {run: download}\n  a: {run: download}\n",
		"version: 1\nx: &s {run: download}\nstages:\n  a: {<<: *s, with: {sources: [c.txt]}}\n",
		"version: 1\nstages:\n  tok.bytes: {run: download, with: {sources: [c.txt]}}\n  tok_bytes: {run: download, with: {sources: [c.txt]}}\n",
		// issue 24: matrix stages, chained, over stage names, and wrong.
		"version: 1\nstages:\n  a: {run: download, matrix: {s: [c.txt, d.txt]}, with: {sources: [\"${s}\"]}}\n  b: {run: tokenize, matrix: {s: [c.txt, d.txt]}, inputs: {text: \"a@s=${s}\"}}\n",
		"version: 1\nstages:\n  a: {run: download, with: {sources: [c.txt]}}\n  b: {run: tokenize, matrix: {m: [a], n: [1, 2]}, inputs: {text: \"${m}\"}, shards: \"${n}\"}\n",
		"version: 1\nstages:\n  a: {run: download, matrix: {s: [], t: [1, 1]}, with: {sources: [\"${s}${t}\"]}}\n",
		"version: 1\nvars: {n: 3}\nstages:\n  a: {run: download, matrix: {a: [1], b: [x], c: [y.z]}, with: {sources: [\"${a}${b}${c}${n}\"]}, slurm: {time: \"${a}\"}}\n",
		"version: 1\nx: &v [1, 2]\nstages:\n  a: {run: download, matrix: {s: *v}, with: {sources: [\"${s}\"]}}\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Skip()
		}
		p, err := Load(path, map[string]string{}, reg)
		if err != nil {
			return
		}
		if len(p.Order) != len(p.Stages) {
			t.Fatalf("loaded with order %v for %d stages", p.Order, len(p.Stages))
		}
		for name := range p.Stages {
			if CheckStageName(name) != nil && CheckExpandedName(name) != nil {
				t.Fatalf("loaded a stage named %q", name)
			}
		}
		if _, err := jobNames(p.Name, p.Order); err != nil {
			t.Fatalf("stages %v: %v", p.Order, err)
		}
	})
}

// FuzzResolveParams: any `with:` mapping resolves or is refused naming its
// key, never a panic, and what the stage's command line parses from it is
// what resolveParams resolves (checkAgainstKong).
func FuzzResolveParams(f *testing.F) {
	for _, seed := range []string{
		"{}", "{count: 16.0, rate: 3e-4, wait: 90s, on: yes}", "{sizes: [1, '2,3'], names: ['a,b']}",
		"{small: 300}", "{big: -1}", "{paths: [-x, a]}", "{count: [1, 2]}", "{wait: 5}", "{sizes: '1\\\\,2'}",
		"{count: 0b101, off: 'NO', rate: .5, level: high, dir: ../x}", "{rate: .inf}", "{count: ~}",
		"{sizes: []}", "{sizes: ''}", "{sizes: ',1,,2,'}", "{names: ['a\\\\,b', 'c\\\\']}",
	} {
		f.Add(seed)
	}
	sp := kindsSpec(f)
	f.Fuzz(func(t *testing.T, body string) {
		var with map[string]any
		if yaml.Unmarshal([]byte(body), &with) != nil {
			return
		}
		for k := range with {
			if fl, ok := sp.Flag(k); !ok || !fl.Pipeline {
				delete(with, k)
			}
		}
		if _, err := resolveParams(sp, with); err != nil && !strings.HasPrefix(err.Error(), "with.") {
			t.Fatalf("%v: error %q names no with: key", with, err)
		}
		if len(body) > 1<<12 || len(fmt.Sprint(with)) > 1<<16 {
			return // kong's own splitting takes quadratic time
		}
		for _, sep := range []rune{',', ':', -1} {
			if got, want := splitEscaped(body, sep), kong.SplitEscaped(body, sep); !reflect.DeepEqual(got, want) {
				t.Fatalf("splitEscaped(%q, %q) = %q, kong says %q", body, sep, got, want)
			}
		}
		checkAgainstKong(t, sp, with)
	})
}
