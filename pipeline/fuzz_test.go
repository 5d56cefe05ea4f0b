package pipeline

import (
	"os"
	"path/filepath"
	"testing"
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
