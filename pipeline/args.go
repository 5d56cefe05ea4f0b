package pipeline

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/stage"
)

// Args renders a stage as the command line that runs it, through the same
// kong grammar a user types: the kind, input paths (positional or as their
// flags), the `with:` flags sorted by name, then -o out. A `with:` value that
// is a list repeats the flag (or gives several positional arguments). A
// positional argument that starts with "-" (a `with:` value such as -h) would
// be read as a flag: then the positionals come last, after "--". extra are
// flags the engine adds (an array task's shard flags), after -o out.
func Args(sp stage.Spec, in map[string]string, with map[string]any, out string, extra ...string) []string {
	args := []string{sp.Kind}
	var pos, flags []string
	for _, input := range sp.Inputs {
		p, ok := in[input.Name]
		if !ok {
			continue
		}
		f, _ := sp.InputFlag(input.Name)
		if f.Positional {
			pos = append(pos, p)
		} else {
			flags = append(flags, "--"+f.Name+"="+p)
		}
	}
	keys := make([]string, 0, len(with))
	for k := range with {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, _ := sp.Flag(k)
		for _, v := range values(with[k]) {
			switch {
			case f.Positional:
				pos = append(pos, v)
			case f.Bool && v == "true":
				flags = append(flags, "--"+k)
			default:
				flags = append(flags, "--"+k+"="+v)
			}
		}
	}
	if slices.ContainsFunc(pos, func(p string) bool { return strings.HasPrefix(p, "-") }) {
		args = append(append(append(args, flags...), "-o", out), extra...)
		return append(append(args, "--"), pos...)
	}
	args = append(append(args, pos...), flags...)
	return append(append(args, "-o", out), extra...)
}

// values renders a `with:` value as strings: a list gives one per element.
func values(v any) []string {
	if list, ok := v.([]any); ok {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = fmt.Sprint(e)
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}
