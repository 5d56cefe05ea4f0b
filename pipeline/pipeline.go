// Package pipeline reads declarative pipeline files (see ../shared/spec/pipeline.md)
// and runs them with content-addressed caching: a stage whose kind, version,
// meaningful parameters and input artifacts are unchanged is skipped, and the
// reason a stage runs is reported as data.
//
//	version: 1
//	name: demo
//	vars: {length: 64}
//	stages:
//	  text:   {run: download, with: {sources: [testdata/kjv/kjv.jsonl.gz], hold-out: 60}}
//	  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
//	  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: "${length}"}}
//
// `with` keys are the stage command's flag names, so a stage runs alike by hand
// and in a pipeline; `inputs` bind a stage's named input to another stage's
// output; ${var} substitutes vars (overridable). `shards: N` splits a stage that
// supports it (tokenize, pack) into N processes on a scheduler (see Slurm); it does not
// change the stage's output or cache key. `slurm: {gres: "gpu:1", time: "48:00:00"}`
// adds sbatch options to that stage's job only, `kubernetes: {nvidia.com/gpu: 1}`
// resource limits to its Kubernetes container.
//
// Stage names become directory names in the cache (<name>-<key>), Slurm log
// names and Kubernetes labels, so they must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$
// and hold no "..": a letter or digit, then at most 62 letters, digits, '_',
// '.' or '-'. Keys the file format does not define (at the top level, in a
// stage) are errors naming file:line, with a suggestion for a near miss.
//
// `matrix: {seed: [1, 2], steps: [16, 64]}` makes a stage a sweep: it expands
// into one stage per combination, named base@seed=1,steps=16 and so on, with
// ${axis} substituted like a var (see matrix.go for names, limits and how
// downstream stages take the expansions).
package pipeline

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mdlm-go/mdlm/stage"
)

// File is a parsed pipeline file.
type File struct {
	Path    string
	Version int
	Name    string
	Vars    map[string]string
	Stages  map[string]*Stage
	Order   []string // topological order
	// Matrices maps each matrix stage written in the file to its
	// expansions' names, in file order.
	Matrices map[string][]string
}

// Stage is one stage of a pipeline.
type Stage struct {
	Name   string
	Run    string            // stage kind (a command)
	Inputs map[string]string // input name -> producing stage
	With   map[string]any    // flags
	Shards int               // processes sharing the stage on a scheduler (0 or 1: one)
	Slurm  map[string]string // extra sbatch options for this stage's job (gres, time, ...)
	// Kubernetes holds this stage's container resource limits (nvidia.com/gpu: 1).
	Kubernetes map[string]string
	Line       int
	Spec       stage.Spec // the kind's spec from the registry
	// Base is the stage written in the file when this one is an expansion
	// of its matrix: (see matrix.go), and Matrix the axis values it binds;
	// both are empty otherwise.
	Base   string
	Matrix map[string]string
}

type rawFile struct {
	Version int            `yaml:"version"`
	Name    string         `yaml:"name"`
	Vars    map[string]any `yaml:"vars"`
	Stages  yaml.Node      `yaml:"-"` // walked by hand: see stageNodes
}

type rawStage struct {
	Run    string            `yaml:"run"`
	Inputs map[string]string `yaml:"inputs"`
	With   map[string]any    `yaml:"with"`
	Shards any               `yaml:"shards"`
	Matrix yaml.Node         `yaml:"matrix"`
	Slurm  map[string]any    `yaml:"slurm"`
	K8s    map[string]any    `yaml:"kubernetes"`
}

// Load parses and validates a pipeline file against the stage registry;
// overrides replace vars.
func Load(path string, overrides map[string]string, reg stage.Registry) (*File, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkKeys(path, &doc); err != nil {
		return nil, err
	}
	var raw rawFile
	if err := doc.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if raw.Version != 1 {
		return nil, fmt.Errorf("%s: version %d, want 1", path, raw.Version)
	}
	// The pipeline's name goes into Slurm job names and the Kubernetes
	// export: the stage-name pattern (a name with a newline wrote YAML
	// documents of its own into what kubectl applies).
	if raw.Name != "" && (!stageName.MatchString(raw.Name) || strings.Contains(raw.Name, "..")) {
		line := 0
		if n := mapValue(doc.Content[0], "name"); n != nil {
			line = n.Line
		}
		return nil, fmt.Errorf("%s:%d: pipeline name %q: want a letter or digit, then at most 62 letters, digits, '_', '.' or '-', and no \"..\"",
			path, line, raw.Name)
	}
	f := &File{Path: path, Version: raw.Version, Name: raw.Name, Vars: map[string]string{}, Stages: map[string]*Stage{}}
	for k, v := range raw.Vars {
		f.Vars[k] = fmt.Sprint(v)
	}
	for k, v := range overrides {
		if _, ok := f.Vars[k]; !ok {
			return nil, fmt.Errorf("%s: --set %s: no such var (vars: %v)", path, k, sortedKeys(f.Vars))
		}
		f.Vars[k] = v
	}
	stages, err := stageNodes(path, &doc)
	if err != nil {
		return nil, err
	}
	for _, sn := range stages {
		if err := f.addStage(sn); err != nil {
			return nil, err
		}
	}
	if err := f.validate(reg); err != nil {
		return nil, err
	}
	return f, nil
}

// addStage decodes one written stage into f: itself, or one stage per
// combination of its matrix.
func (f *File) addStage(sn stageNode) error {
	path, name, node := f.Path, sn.name, sn.node
	var rs rawStage
	if err := node.Decode(&rs); err != nil {
		return fmt.Errorf("%s:%d: stage %q: %w", path, node.Line, name, err)
	}
	if rs.Matrix.Kind == 0 {
		if len(f.Stages) >= MaxStages {
			return fmt.Errorf("%s:%d: stage %q: more than %d stages", path, node.Line, name, MaxStages)
		}
		st, err := buildStage(path, name, node.Line, &rs, scope{vars: f.Vars})
		if err != nil {
			return err
		}
		f.Stages[name] = st
		return nil
	}
	return f.addMatrix(name, node, &rs)
}

// addMatrix adds the expansions of a matrix stage (see matrix.go).
func (f *File) addMatrix(name string, node *yaml.Node, rs *rawStage) error {
	path := f.Path
	axes, err := parseMatrix(path, name, &rs.Matrix, f.Vars)
	if err != nil {
		return err
	}
	if err := checkAxesUsed(fmt.Sprintf("%s:%d: stage %q", path, node.Line, name), axes, node); err != nil {
		return err
	}
	cs := combos(name, axes)
	if len(f.Stages)+len(cs) > MaxStages {
		return fmt.Errorf("%s:%d: stage %q: its matrix makes the pipeline more than %d stages", path, node.Line, name, MaxStages)
	}
	if f.Matrices == nil {
		f.Matrices = map[string][]string{}
	}
	for _, c := range cs {
		if err := CheckExpandedName(c.name); err != nil {
			return fmt.Errorf("%s:%d: stage %q: matrix: %w", path, rs.Matrix.Line, name, err)
		}
		if _, dup := f.Stages[c.name]; dup {
			return fmt.Errorf("%s:%d: stage %q: matrix: expansion %q is already a stage", path, rs.Matrix.Line, name, c.name)
		}
		st, err := buildStage(path, c.name, node.Line, rs, scope{vars: f.Vars, axes: c.vals})
		if err != nil {
			return err
		}
		st.Base, st.Matrix = name, c.vals
		f.Stages[c.name] = st
		f.Matrices[name] = append(f.Matrices[name], c.name)
	}
	return nil
}

// buildStage makes the stage name of a decoded stage, substituting vars in
// its inputs, with:, shards:, slurm: and kubernetes: values.
func buildStage(path, name string, line int, rs *rawStage, vars scope) (*Stage, error) {
	where := fmt.Sprintf("%s:%d: stage %q", path, line, name)
	st := &Stage{Name: name, Run: rs.Run, With: map[string]any{}, Line: line}
	var err error
	if st.Inputs, err = substituteInputs(rs.Inputs, vars); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if st.Slurm, err = optionMap(rs.Slurm, vars, slurmOption, "slurm", "an sbatch long option name like gres or cpus-per-task"); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if st.Kubernetes, err = optionMap(rs.K8s, vars, resourceName, "kubernetes", "a resource name like cpu, memory or nvidia.com/gpu"); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if rs.Shards != nil {
		sv, err := substitute(rs.Shards, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: shards: %w", where, err)
		}
		n, err := strconv.Atoi(fmt.Sprint(sv))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: shards %v: want a whole number >= 1", where, sv)
		}
		st.Shards = n
	}
	for k, v := range rs.With {
		sv, err := substitute(v, vars)
		if err != nil {
			return nil, fmt.Errorf("%s: with.%s: %w", where, k, err)
		}
		st.With[k] = sv
	}
	return st, nil
}

// substituteInputs substitutes vars (and matrix axes) in the producing stage
// names of a stage's inputs. Files without ${...} in inputs: are unchanged.
func substituteInputs(raw map[string]string, vars scope) (map[string]string, error) {
	if len(raw) == 0 {
		return raw, nil
	}
	out := make(map[string]string, len(raw))
	for in, from := range raw {
		sv, err := substitute(from, vars)
		if err != nil {
			return nil, fmt.Errorf("inputs.%s: %w", in, err)
		}
		out[in] = sv.(string)
	}
	return out, nil
}

var (
	slurmOption  = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	resourceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)?$`)
)

// optionMap checks a stage's scheduler options (keys against valid) and
// substitutes vars in their values.
func optionMap(raw map[string]any, vars scope, valid *regexp.Regexp, section, want string) (map[string]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for k, v := range raw {
		if !valid.MatchString(k) {
			return nil, fmt.Errorf("%s: %q: want %s", section, k, want)
		}
		sv, err := substitute(v, vars)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", section, k, err)
		}
		out[k] = fmt.Sprint(sv)
	}
	return out, nil
}

// scope is what ${name} may name: a matrix expansion's axis values, then the
// file's vars (an axis may not share a var's name; see parseMatrix). Axes are
// looked up, not merged into a copy of vars, so an expansion costs no more
// than a stage of no matrix.
type scope struct{ vars, axes map[string]string }

func (s scope) get(name string) (string, bool) {
	if v, ok := s.axes[name]; ok {
		return v, true
	}
	v, ok := s.vars[name]
	return v, ok
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

func substitute(v any, vars scope) (any, error) {
	switch x := v.(type) {
	case string:
		var missing string
		out := varRef.ReplaceAllStringFunc(x, func(m string) string {
			name := varRef.FindStringSubmatch(m)[1]
			val, ok := vars.get(name)
			if !ok {
				missing = name
			}
			return val
		})
		if missing != "" {
			return nil, fmt.Errorf("undefined var or matrix axis ${%s}", missing)
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			s, err := substitute(e, vars)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	return v, nil
}

// validate checks stage kinds, inputs, `with:` keys and cycles against the
// registry, and sets Order.
func (f *File) validate(reg stage.Registry) error {
	names := sortedKeys(f.Stages)
	for _, name := range names {
		st := f.Stages[name]
		sp, ok := reg[st.Run]
		if !ok {
			return fmt.Errorf("%s:%d: stage %q: unknown stage kind %q (known: %v)", f.Path, st.Line, name, st.Run, reg.Kinds())
		}
		st.Spec = sp
		var inputs []string
		for _, in := range sp.Inputs {
			inputs = append(inputs, in.Name)
		}
		for in, from := range st.Inputs {
			want, ok := sp.Input(in)
			if !ok {
				return fmt.Errorf("%s:%d: stage %q: %s takes no input %q (inputs: %v)", f.Path, st.Line, name, st.Run, in, inputs)
			}
			src, ok := f.Stages[from]
			if !ok {
				if exp := f.Matrices[from]; len(exp) > 0 {
					return fmt.Errorf("%s:%d: stage %q: input %q comes from %q, a matrix stage: name one expansion (%s) or make this stage a matrix over the same axes", f.Path, st.Line, name, in, from, strings.Join(exp[:min(len(exp), 4)], ", "))
				}
				return fmt.Errorf("%s:%d: stage %q: input %q comes from unknown stage %q", f.Path, st.Line, name, in, from)
			}
			if got := reg[src.Run].Output; reg[src.Run].Kind != "" && got != want.Type {
				return fmt.Errorf("%s:%d: stage %q: input %q wants %s, stage %q makes %s", f.Path, st.Line, name, in, want.Type, from, got)
			}
		}
		for k := range st.With {
			fl, ok := sp.Flag(k)
			if !ok || !fl.Pipeline {
				return fmt.Errorf("%s:%d: stage %q: %s has no flag --%s (with: keys are %v)", f.Path, st.Line, name, st.Run, k, sp.PipelineKeys())
			}
			if fl.Input != "" {
				if _, bound := st.Inputs[fl.Input]; bound {
					return fmt.Errorf("%s:%d: stage %q: with.%s: input %q is already bound to stage %q", f.Path, st.Line, name, k, fl.Input, st.Inputs[fl.Input])
				}
			}
		}
		for _, in := range sp.Inputs {
			fl, _ := sp.InputFlag(in.Name)
			_, bound := st.Inputs[in.Name]
			_, given := st.With[fl.Name]
			if !bound && !given && !in.Optional {
				return fmt.Errorf("%s:%d: stage %q: missing input %q (bind it under inputs:, or give a path as with.%s)", f.Path, st.Line, name, in.Name, fl.Name)
			}
		}
		if st.Shards > 1 && !sp.Shardable {
			return fmt.Errorf("%s:%d: stage %q: shards %d: %s does not split into shards (only: %v)", f.Path, st.Line, name, st.Shards, st.Run, shardableKinds(reg))
		}
	}
	f.Order = topoOrder(f.Stages, names)
	if len(f.Order) != len(names) {
		placed := make(map[string]bool, len(f.Order))
		for _, n := range f.Order {
			placed[n] = true
		}
		var stuck []string
		for _, n := range names {
			if !placed[n] {
				stuck = append(stuck, n)
			}
		}
		return fmt.Errorf("%s: cycle among stages %v", f.Path, stuck)
	}
	return nil
}

// upstream returns name and every stage it depends on, directly or not.
func (f *File) upstream(name string) map[string]bool {
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, from := range f.Stages[n].Inputs {
			visit(from)
		}
	}
	visit(name)
	return seen
}

func shardableKinds(reg stage.Registry) []string {
	var out []string
	for _, k := range reg.Kinds() {
		if reg[k].Shardable {
			out = append(out, k)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
