package pipeline

import (
	"fmt"
	"strings"

	"github.com/mdlm-go/mdlm/stage"
)

// validate checks stage kinds, inputs, `with:` keys and cycles against the
// registry, and sets Order.
func (f *File) validate(reg stage.Registry) error {
	names := sortedKeys(f.Stages)
	for _, name := range names {
		if err := f.validateStage(reg, f.Stages[name]); err != nil {
			return err
		}
	}
	f.Order = topoOrder(f.Stages, names)
	if len(f.Order) != len(names) {
		return fmt.Errorf("%s: cycle among stages %v", f.Path, notIn(names, f.Order))
	}
	return nil
}

// validateStage sets st's Spec from the registry and checks st against it.
func (f *File) validateStage(reg stage.Registry, st *Stage) error {
	sp, ok := reg[st.Run]
	if !ok {
		return fmt.Errorf("%s:%d: stage %q: unknown stage kind %q (known: %v)", f.Path, st.Line, st.Name, st.Run, reg.Kinds())
	}
	st.Spec = sp
	where := fmt.Sprintf("%s:%d: stage %q", f.Path, st.Line, st.Name)
	for in, from := range st.Inputs {
		if err := f.checkInput(reg, st, in, from); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	if err := checkWith(st); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if st.Shards > 1 && !sp.Shardable {
		return fmt.Errorf("%s: shards %d: %s does not split into shards (only: %v)", where, st.Shards, st.Run, shardableKinds(reg))
	}
	return nil
}

// checkInput checks that input in of st exists and that stage from makes
// what it wants.
func (f *File) checkInput(reg stage.Registry, st *Stage, in, from string) error {
	sp := st.Spec
	want, ok := sp.Input(in)
	if !ok {
		var inputs []string
		for _, in := range sp.Inputs {
			inputs = append(inputs, in.Name)
		}
		return fmt.Errorf("%s takes no input %q (inputs: %v)", st.Run, in, inputs)
	}
	src, ok := f.Stages[from]
	if !ok {
		if exp := f.Matrices[from]; len(exp) > 0 {
			return fmt.Errorf("input %q comes from %q, a matrix stage: name one expansion (%s) or make this stage a matrix over the same axes", in, from, strings.Join(exp[:min(len(exp), 4)], ", "))
		}
		return fmt.Errorf("input %q comes from unknown stage %q", in, from)
	}
	if got := reg[src.Run].Output; reg[src.Run].Kind != "" && got != want.Type {
		return fmt.Errorf("input %q wants %s, stage %q makes %s", in, want.Type, from, got)
	}
	return nil
}

// checkWith checks that every `with:` key is a pipeline flag of the stage,
// that no input is given both ways, and that every required input is given.
func checkWith(st *Stage) error {
	sp := st.Spec
	for k := range st.With {
		fl, ok := sp.Flag(k)
		if !ok || !fl.Pipeline {
			return fmt.Errorf("%s has no flag --%s (with: keys are %v)", st.Run, k, sp.PipelineKeys())
		}
		if _, bound := st.Inputs[fl.Input]; fl.Input != "" && bound {
			return fmt.Errorf("with.%s: input %q is already bound to stage %q", k, fl.Input, st.Inputs[fl.Input])
		}
	}
	for _, in := range sp.Inputs {
		fl, _ := sp.InputFlag(in.Name)
		_, bound := st.Inputs[in.Name]
		_, given := st.With[fl.Name]
		if !bound && !given && !in.Optional {
			return fmt.Errorf("missing input %q (bind it under inputs:, or give a path as with.%s)", in.Name, fl.Name)
		}
	}
	return nil
}

// notIn lists the names that are not in placed, in order.
func notIn(names, placed []string) []string {
	in := make(map[string]bool, len(placed))
	for _, n := range placed {
		in[n] = true
	}
	var out []string
	for _, n := range names {
		if !in[n] {
			out = append(out, n)
		}
	}
	return out
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
