package pipeline

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mdlm-go/mdlm/stage"
)

// Loading a pipeline file: parse the YAML (syntax.go checks its keys),
// substitute vars (vars.go), expand matrices (matrix.go) and validate the
// stages against the stage registry (validate.go).

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
