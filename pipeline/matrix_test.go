package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// sweepHead is a pipeline's data stages for the matrix tests: a corpus packed
// into blocks.
const sweepHead = `version: 1
name: sweep
vars: {length: 16}
stages:
  text: {run: download, with: {sources: [DIR/c.txt]}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
`

// writePipeline writes body as p.yaml beside a tiny corpus and a stand-in
// checkpoint (DIR/ in body names their directory) and returns its path.
func writePipeline(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"c.txt", "m.ckpt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("in the beginning\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "p.yaml")
	body = strings.ReplaceAll(body, "DIR/", dir+"/")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMatrixExpand: a matrix stage becomes one stage per combination, named
// base@axis=value,... in file order, with the axis values in with: and
// inputs:, and downstream matrices bind expansions by name.
func TestMatrixExpand(t *testing.T) {
	body := sweepHead + `  model:
    run: train
    matrix: {seed: [1, 2]}
    inputs: {data: blocks}
    with: {steps: 3, seed: "${seed}"}
  samples:
    run: sample
    matrix: {seed: [1, 2], steps: [16, 64]}
    inputs: {model: "model@seed=${seed}"}
    with: {steps: "${steps}", num: 1}
  pick:
    run: eval
    matrix: {m: [model@seed=1, model@seed=2]}
    inputs: {model: "${m}", data: blocks}
`
	f, err := Load(writePipeline(t, body), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	wantMatrices := map[string][]string{
		"model":   {"model@seed=1", "model@seed=2"},
		"samples": {"samples@seed=1,steps=16", "samples@seed=1,steps=64", "samples@seed=2,steps=16", "samples@seed=2,steps=64"},
		"pick":    {"pick@m=model@seed=1", "pick@m=model@seed=2"},
	}
	if !reflect.DeepEqual(f.Matrices, wantMatrices) {
		t.Errorf("matrices %v, want %v", f.Matrices, wantMatrices)
	}
	if len(f.Stages) != 3+2+4+2 || len(f.Order) != len(f.Stages) {
		t.Fatalf("%d stages, order %v", len(f.Stages), f.Order)
	}
	for _, bare := range []string{"model", "samples", "pick"} {
		if _, ok := f.Stages[bare]; ok {
			t.Errorf("the matrix stage %q itself is a stage", bare)
		}
	}
	s := f.Stages["samples@seed=2,steps=64"]
	if s.Inputs["model"] != "model@seed=2" || s.With["steps"] != "64" || s.Base != "samples" ||
		!reflect.DeepEqual(s.Matrix, map[string]string{"seed": "2", "steps": "64"}) {
		t.Errorf("samples@seed=2,steps=64: inputs %v with %v base %q matrix %v", s.Inputs, s.With, s.Base, s.Matrix)
	}
	if m := f.Stages["model@seed=1"]; m.With["seed"] != "1" || m.With["steps"] != 3 {
		t.Errorf("model@seed=1: with %v", m.With)
	}
	if p := f.Stages["pick@m=model@seed=2"]; p.Inputs["model"] != "model@seed=2" {
		t.Errorf("pick@m=model@seed=2: inputs %v", p.Inputs)
	}
	for name := range f.Stages {
		if CheckStageName(name) != nil && CheckExpandedName(name) != nil {
			t.Errorf("invalid stage name %q", name)
		}
	}
}

// TestMatrixCacheKeys: every expansion has its own cache key and output
// directory, and a pipeline without a matrix keeps its keys (issue 24: the
// golden files of existing pipelines do not change).
func TestMatrixCacheKeys(t *testing.T) {
	body := sweepHead + `  samples:
    run: sample
    matrix: {steps: [16, 64], seed: [1, 2]}
    with: {checkpoint: DIR/m.ckpt, steps: "${steps}", seed: "${seed}"}
`
	path := writePipeline(t, body)
	f, ds := loadAndPlan(t, path)
	keys, outs := map[string]string{}, map[string]bool{}
	for _, d := range ds {
		if other, dup := keys[d.Key]; dup {
			t.Errorf("%s and %s share the key %s", other, d.Stage, d.Key)
		}
		keys[d.Key], outs[d.Out] = d.Stage, true
		if st := f.Stages[d.Stage]; !reflect.DeepEqual(d.Matrix, st.Matrix) {
			t.Errorf("%s: decision matrix %v, stage %v", d.Stage, d.Matrix, st.Matrix)
		}
		if strings.HasPrefix(d.Stage, "samples@") && filepath.Base(d.Out) != d.Stage+"-"+d.Key[:16] {
			t.Errorf("%s: output %s", d.Stage, d.Out)
		}
	}
	if len(keys) != 7 || len(outs) != 7 {
		t.Errorf("%d keys, %d outputs for 7 stages", len(keys), len(outs))
	}
	// The same stage written out by hand has the key of its expansion.
	dir := filepath.Dir(path)
	plain := filepath.Join(dir, "plain.yaml")
	body = strings.ReplaceAll(sweepHead+"  samples:\n    run: sample\n    with: {checkpoint: DIR/m.ckpt, steps: 64, seed: 2}\n", "DIR/", dir+"/")
	if err := os.WriteFile(plain, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err := Load(plain, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	pds, err := (&Engine{CacheDir: t.TempDir()}).Plan(context.Background(), pf)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pds {
		if d.Stage == "samples" && keys[d.Key] != "samples@steps=64,seed=2" {
			t.Errorf("the written-out stage has key %s, the expansion's is another", d.Key)
		}
		if d.Matrix != nil {
			t.Errorf("%s: a stage of no matrix has matrix %v", d.Stage, d.Matrix)
		}
	}
}

// TestHostileMatrix: sweeps that are wrong are refused at load, naming
// file:line: an unknown axis, an empty or unusable axis, duplicate values
// (two stages of one name), names that are not safe, the bare name of a
// matrix stage as an input, and a combinatorial explosion.
func TestHostileMatrix(t *testing.T) {
	stage := func(lines ...string) string { return sweepHead + "  s:\n    " + strings.Join(lines, "\n    ") + "\n" }
	big := make([]string, 70)
	for i := range big {
		big[i] = strings.Repeat("v", 1+i%60) + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	var axesList []string
	for i := range 17 {
		axesList = append(axesList, fmt.Sprintf("a%d: [1]", i))
	}
	manyAxes := strings.Join(axesList, ", ")
	cases := []struct {
		name, body string
		want       []string
	}{
		{"unknown axis", stage("run: pack", "matrix: {n: [8, 16]}", "inputs: {tokens: tokens}", "with: {length: \"${m}\"}"),
			[]string{"p.yaml:9:", `stage "s"`, `axis "n" is used nowhere`}},
		{"unknown axis beside a known one", stage("run: pack", "matrix: {n: [8, 16]}", "inputs: {tokens: tokens}", "with: {length: \"${n}${m}\"}"),
			[]string{"p.yaml:9:", `stage "s@n=8"`, "undefined var or matrix axis ${m}"}},
		{"unused axis", stage("run: pack", "matrix: {seed: [1, 2]}", "inputs: {tokens: tokens}"),
			[]string{"p.yaml:9:", `axis "seed" is used nowhere`}},
		{"empty axis", stage("run: pack", "matrix: {n: []}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", `axis "n"`, "empty list"}},
		{"no axes", stage("run: pack", "matrix: {}", "inputs: {tokens: tokens}"), []string{"p.yaml:10:", "matrix: want a mapping"}},
		{"axis not a list", stage("run: pack", "matrix: {n: 8}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", "want a list of values"}},
		{"nested value", stage("run: pack", "matrix: {n: [[8]]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", "want a scalar value"}},
		{"null value", stage("run: pack", "matrix: {n: [~]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", "want a scalar value"}},
		{"duplicate value", stage("run: pack", "matrix:", "  n: [8, 16,", "      8]", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:11:", `value "8" at line 12 is already listed at line 11`}},
		{"path value", stage("run: pack", "matrix: {n: [../x]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", `value "../x"`}},
		{"slash value", stage("run: pack", "matrix: {n: [a/b]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}"),
			[]string{"p.yaml:10:", `value "a/b"`}},
		{"axis shadows a var", stage("run: pack", "matrix: {length: [8]}", "inputs: {tokens: tokens}", "with: {length: \"${length}\"}"),
			[]string{"p.yaml:10:", `axis "length": is also a var`}},
		{"bad axis name", stage("run: pack", "matrix: {a-b: [8]}", "inputs: {tokens: tokens}"),
			[]string{"p.yaml:10:", `axis "a-b"`}},
		{"name too long", stage("run: pack", "matrix: {n: ["+strings.Repeat("9", 60)+"], m: ["+strings.Repeat("8", 60)+"], o: ["+strings.Repeat("7", 60)+"]}",
			"inputs: {tokens: tokens}", "with: {length: \"${n}${m}${o}\"}"),
			[]string{"p.yaml:10:", "expanded stage name", "at most 160"}},
		{"bare matrix input", stage("run: pack", "matrix: {n: [8, 16]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}") +
			"  t: {run: tokenize, inputs: {text: s}}\n",
			[]string{"p.yaml:13:", `"s", a matrix stage`, "s@n=8"}},
		{"collision with expansion", stage("run: pack", "matrix: {n: [8]}", "inputs: {tokens: tokens}", "with: {length: \"${n}\"}") +
			"  u:\n    run: pack\n    matrix: {n: [8]}\n    inputs: {tokens: tokens}\n    with: {length: \"${n}\"}\n",
			nil}, // u@n=8 and s@n=8 differ: loads
		{"names collide", stage("run: pack", `matrix: {x: ["a,b=c", a], b: [d, "c,b=d"]}`, "inputs: {tokens: tokens}", "with: {length: \"${x}${b}\"}"),
			[]string{"p.yaml:10:", `expansion "s@x=a,b=c,b=d" is already a stage`}},
		{"too many axes", stage("run: pack", "matrix: {"+manyAxes+"}", "inputs: {tokens: tokens}", "with: {length: \"${a0}\"}"),
			[]string{"p.yaml:10:", "17 axes; at most 16"}},
		{"explosion", stage("run: pack", "matrix: {a: ["+strings.Join(big, ", ")+"], b: ["+strings.Join(big, ", ")+"]}",
			"inputs: {tokens: tokens}", "with: {length: \"${a}${b}\"}"),
			[]string{"p.yaml:10:", "more than 4096 combinations"}},
	}
	for _, c := range cases {
		path := writePipeline(t, c.body)
		_, err := Load(path, nil, reg)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: loaded", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
}

// TestCheckExpandedName: expanded names are a valid base, '@' and axis=value
// pairs; written names keep the narrower pattern.
func TestCheckExpandedName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"ppl@T=1000", true},
		{"samples@seed=1,steps=64", true},
		{"pick@m=model@seed=1", true},
		{"ppl@wikitext2", false},
		{"@T=1", false},
		{"a@T=..", false},
		{"a@T=x/y", false},
		{"../a@T=1", false},
		{"a@" + strings.Repeat("t", 40) + "=" + strings.Repeat("1", 120), false},
	} {
		if err := CheckExpandedName(c.name); (err == nil) != c.ok {
			t.Errorf("CheckExpandedName(%q) = %v, want ok %v", c.name, err, c.ok)
		}
	}
	if CheckStageName("ppl@T=1000") == nil {
		t.Error("a written stage name may hold '@'")
	}
}

// TestSweepPipelineFile: pipelines/sweep.yaml expands to two models, their
// evaluations and four sample sets, and its expanded names make valid,
// distinct Kubernetes Job names and labels.
func TestSweepPipelineFile(t *testing.T) {
	f, err := Load(filepath.Join("..", "pipelines", "sweep.yaml"), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"model":   {"model@seed=1", "model@seed=2"},
		"ppl":     {"ppl@seed=1", "ppl@seed=2"},
		"samples": {"samples@seed=1,steps=32", "samples@seed=1,steps=128", "samples@seed=2,steps=32", "samples@seed=2,steps=128"},
	}
	if !reflect.DeepEqual(f.Matrices, want) {
		t.Errorf("matrices %v, want %v", f.Matrices, want)
	}
	if in := f.Stages["samples@seed=2,steps=128"].Inputs["model"]; in != "model@seed=2" {
		t.Errorf("samples@seed=2,steps=128 samples %q", in)
	}
	var buf bytes.Buffer
	if err := (&Kubernetes{Image: "img:1", Claim: "data", File: "pipelines/sweep.yaml"}).Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	dns := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  name: (\S+)$`).FindAllStringSubmatch(buf.String(), -1) {
		if !dns.MatchString(m[1]) || seen[m[1]] {
			t.Errorf("Job name %q invalid or repeated", m[1])
		}
		seen[m[1]] = true
	}
	if len(seen) != len(f.Stages) {
		t.Errorf("%d Job names for %d stages:\n%s", len(seen), len(f.Stages), buf.String())
	}
	for _, m := range regexp.MustCompile(`mdlm/stage: (\S+)`).FindAllStringSubmatch(buf.String(), -1) {
		if !validLabel.MatchString(strings.Trim(m[1], `"`)) {
			t.Errorf("label value %q", m[1])
		}
	}
}
