package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sweeps (issue 24). A stage with `matrix:` names axes, each a list of scalar
// values (numbers, words, or other stages' names), and expands into one stage
// per combination of their values:
//
//	model:
//	  run: train
//	  matrix: {seed: [1, 2]}
//	  inputs: {data: blocks}
//	  with: {seed: "${seed}"}
//	samples:
//	  run: sample
//	  matrix: {seed: [1, 2], steps: [16, 64]}
//	  inputs: {model: "model@seed=${seed}"}
//	  with: {steps: "${steps}"}
//
// gives model@seed=1, model@seed=2 and samples@seed=1,steps=16 ... each with
// its own cache key. ${axis} substitutes in with:, inputs:, shards:, slurm: and
// kubernetes: as vars do. Stage contracts have one artifact per input, so a
// downstream stage takes the expansions by being a matrix over the same axis
// (inputs: {model: "model@seed=${seed}"}) or over the expansions' names
// (matrix: {m: [model@seed=1, model@seed=2]}, inputs: {model: "${m}"}); the
// bare name of a matrix stage is not an input.
//
// An expanded name is base@axis=value[,axis=value...], axes in file order.
// '@', '=' and ',' appear only in expanded names (a written name keeps the
// stage-name pattern), and all three are plain characters in a cache directory
// name, a Slurm job and log name (sbatch expands only '%' there) and an
// argument (the Slurm --wrap command is shell-quoted); Kubernetes Job names
// and labels sanitize and hash them (see dnsLabel).

// Limits on sweeps: a matrix of more axes than MaxAxes or more combinations
// than MaxMatrix, or a file of more stages than MaxStages after expansion, is
// refused before it is built.
const (
	MaxMatrix       = 4096
	MaxStages       = 100_000
	MaxAxes         = 16
	maxExpandedName = 160
)

var (
	axisName    = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
	axisValue   = regexp.MustCompile(`^[A-Za-z0-9_.@=,-]{1,63}$`)
	expandedRef = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}@[A-Za-z0-9_]+=[A-Za-z0-9_.@=,-]+$`)
)

// axis is one named list of a matrix.
type axis struct {
	name   string
	values []string
}

// combo is one expansion: its name and the axis values it binds.
type combo struct {
	name string
	vals map[string]string
}

// CheckExpandedName checks the name of a matrix stage's expansion: a written
// stage name, '@', then axis=value pairs joined by ','.
func CheckExpandedName(name string) error {
	base, _, _ := strings.Cut(name, "@")
	if err := CheckStageName(base); err != nil {
		return err
	}
	if len(name) > maxExpandedName || !expandedRef.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("expanded stage name %q: want NAME@AXIS=VALUE[,AXIS=VALUE...] of letters, digits, '_', '.', '-', at most %d characters and no \"..\"", name, maxExpandedName)
	}
	return nil
}

// parseMatrix reads a stage's matrix: node into its axes in file order,
// naming file:line for an axis that is not a list of scalars, is empty, lists
// a value twice, or shadows a var.
func parseMatrix(path, stage string, n *yaml.Node, vars map[string]string) ([]axis, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return nil, fmt.Errorf("%s:%d: stage %q: matrix: want a mapping of axis names to lists of values", path, n.Line, stage)
	}
	if len(n.Content)/2 > MaxAxes {
		return nil, fmt.Errorf("%s:%d: stage %q: matrix: %d axes; at most %d", path, n.Line, stage, len(n.Content)/2, MaxAxes)
	}
	var axes []axis
	total := 1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		where := fmt.Sprintf("%s:%d: stage %q: matrix axis %q", path, k.Line, stage, k.Value)
		if !axisName.MatchString(k.Value) {
			return nil, fmt.Errorf("%s: want 1 to 32 letters, digits or '_'", where)
		}
		if _, ok := vars[k.Value]; ok {
			return nil, fmt.Errorf("%s: is also a var; rename one", where)
		}
		for _, a := range axes {
			if a.name == k.Value {
				return nil, fmt.Errorf("%s: given twice", where)
			}
		}
		a, err := parseAxis(where, k.Value, v)
		if err != nil {
			return nil, err
		}
		if total *= len(a.values); total > MaxMatrix {
			return nil, fmt.Errorf("%s: the matrix has more than %d combinations", where, MaxMatrix)
		}
		axes = append(axes, a)
	}
	return axes, nil
}

// parseAxis reads one axis: a non-empty list of distinct scalars, each fit
// for a stage name.
func parseAxis(where, name string, v *yaml.Node) (axis, error) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind != yaml.SequenceNode {
		return axis{}, fmt.Errorf("%s: want a list of values", where)
	}
	if len(v.Content) == 0 {
		return axis{}, fmt.Errorf("%s: empty list; an axis needs at least one value", where)
	}
	a := axis{name: name, values: make([]string, 0, len(v.Content))}
	seen := make(map[string]int, len(v.Content))
	for _, e := range v.Content {
		if e.Kind == yaml.AliasNode && e.Alias != nil {
			e = e.Alias
		}
		if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
			return axis{}, fmt.Errorf("%s: line %d: want a scalar value (a number, a word or a stage name)", where, e.Line)
		}
		if !axisValue.MatchString(e.Value) || strings.Contains(e.Value, "..") {
			return axis{}, fmt.Errorf("%s: value %q at line %d: it goes into stage names, so want 1 to 63 letters, digits, '_', '.', '-', '@', '=' or ',' and no \"..\"", where, e.Value, e.Line)
		}
		if prev, dup := seen[e.Value]; dup {
			return axis{}, fmt.Errorf("%s: value %q at line %d is already listed at line %d (two stages would share a name)", where, e.Value, e.Line, prev)
		}
		seen[e.Value] = e.Line
		a.values = append(a.values, e.Value)
	}
	return a, nil
}

// combos lists the expansions of a matrix stage in file order: the last axis
// varies fastest.
func combos(base string, axes []axis) []combo {
	out := []combo{{name: base, vals: map[string]string{}}}
	for i, a := range axes {
		next := make([]combo, 0, len(out)*len(a.values))
		for _, c := range out {
			for _, v := range a.values {
				sep := ","
				if i == 0 {
					sep = "@"
				}
				vals := make(map[string]string, len(c.vals)+1)
				for k, x := range c.vals {
					vals[k] = x
				}
				vals[a.name] = v
				next = append(next, combo{name: c.name + sep + a.name + "=" + v, vals: vals})
			}
		}
		out = next
	}
	return out
}

// checkAxesUsed refuses an axis that no with:, inputs:, shards:, slurm: or
// kubernetes: value of the stage refers to: its expansions would be the same
// stage under several names.
func checkAxesUsed(where string, axes []axis, node *yaml.Node) error {
	used := map[string]bool{}
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > 8 {
			return
		}
		if n.Kind == yaml.ScalarNode {
			for _, m := range varRef.FindAllStringSubmatch(n.Value, -1) {
				used[m[1]] = true
			}
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	for _, key := range []string{"with", "inputs", "shards", "slurm", "kubernetes"} {
		if v := mapValue(node, key); v != nil {
			walk(v, 0)
		}
	}
	for _, a := range axes {
		if !used[a.name] {
			return fmt.Errorf("%s: matrix axis %q is used nowhere: refer to it as ${%s} in with: or inputs:", where, a.name, a.name)
		}
	}
	return nil
}
