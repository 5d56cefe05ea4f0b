package pipeline

import (
	"fmt"
	"regexp"
)

// ${var} substitution in a stage's inputs:, with:, shards:, slurm: and
// kubernetes: values, from the file's vars (overridable with --set) and a
// matrix expansion's axis values.

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
