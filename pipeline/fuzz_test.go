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
		if err == nil && len(p.Order) != len(p.Stages) {
			t.Fatalf("loaded with order %v for %d stages", p.Order, len(p.Stages))
		}
	})
}
