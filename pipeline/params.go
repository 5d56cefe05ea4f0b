package pipeline

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/stage"
)

// A stage's parameters, as its cache key covers them, are the values its
// command would see: every keyed flag (not cosmetic, not pipeline:"-", not the
// output, and an input's flag only when `with:` gives it a path), its `with:`
// value or else its kong default, normalised to the flag's Go type as kong
// would decode it. So `batch: 16`, `batch: 16.0`, `batch: "16"` and no batch
// at all (default 16) are one key, and `lr: 3e-4` is `lr: 0.0003`. Paths
// stay as written: a relative path is the same file on every machine that
// shares the pipeline, an absolute one would not be.

// valueKind is how a flag's text is normalised.
type valueKind int

const (
	asWritten valueKind = iota // strings, paths, names, and types kong maps by name
	kindInt
	kindUint
	kindFloat
	kindBool
	kindDuration
)

// flagType is what normalising a flag's value needs from its Go type.
type flagType struct {
	kind valueKind // of the value, or of each element of a list
	bits int       // of an int, uint or float
	list bool
	sep  rune // a list flag's value separator (-1: none); positional lists are not split
}

var (
	mapperValue     = reflect.TypeFor[kong.MapperValue]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// flagTypes caches each Options type's flag types, by reflect type.
var flagTypes sync.Map

// typesOf returns the types of sp's flags, from the kong model of its Options
// (the grammar that parses its command line).
func typesOf(sp stage.Spec) map[string]flagType {
	if sp.New == nil {
		return nil
	}
	opts := sp.New()
	if t, ok := flagTypes.Load(reflect.TypeOf(opts)); ok {
		return t.(map[string]flagType)
	}
	types := map[string]flagType{}
	k, err := kong.New(opts, kong.Name(sp.Kind), kong.Exit(func(int) {}))
	if err != nil { // stage.SpecOf built this model already: cannot happen
		return types
	}
	for _, fl := range k.Model.Flags {
		types[fl.Name] = typeOf(fl.Value, false)
	}
	for _, p := range k.Model.Positional {
		types[p.Name] = typeOf(p, true)
	}
	flagTypes.Store(reflect.TypeOf(opts), types)
	return types
}

func typeOf(v *kong.Value, positional bool) flagType {
	t := v.Target.Type()
	ft := flagType{sep: -1}
	if t.Kind() == reflect.Slice {
		ft.list = true
		t = t.Elem()
		if !positional {
			ft.sep = v.Tag.Sep
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	switch {
	case v.Tag.Type != "" || pt.Implements(mapperValue) || pt.Implements(textUnmarshaler):
		ft.kind = asWritten // decoded by a mapper of its own (path, counter, ...)
	case t == reflect.TypeFor[time.Duration]():
		ft.kind = kindDuration
	case t.Kind() == reflect.Bool:
		ft.kind = kindBool
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		ft.kind, ft.bits = kindInt, t.Bits()
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		ft.kind, ft.bits = kindUint, t.Bits()
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		ft.kind, ft.bits = kindFloat, t.Bits()
	}
	return ft
}

// resolveParams returns the parameters the cache key covers (see above). A
// value that does not parse as its flag's type is an error naming the
// `with:` key; the params then hold it as written.
func resolveParams(sp stage.Spec, with map[string]any) (map[string]any, error) {
	types := typesOf(sp)
	params := map[string]any{}
	var first error
	for _, fl := range sp.Flags {
		v, given := with[fl.Name]
		if fl.Cosmetic || !fl.Pipeline || fl.Input != "" && !given {
			continue
		}
		texts, set := []string{fl.Default}, fl.Default != ""
		if written := values(v); given && len(written) > 0 { // an empty list gives the flag no value (Args)
			texts, set = written, true
		}
		t, ok := types[fl.Name]
		if !ok { // no kong model: keep the text, a list as a list
			t = flagType{list: fl.List, sep: -1}
		}
		val, err := normalise(t, texts, set)
		if err != nil {
			val = strings.Join(texts, ",")
			if first == nil {
				first = fmt.Errorf("with.%s: %w", fl.Name, err)
			}
		}
		params[fl.Name] = val
	}
	return params, first
}

// normalise turns a flag's texts (one per repetition of the flag) into its
// canonical value: a string, or a list of strings for a list flag. set false
// means the flag has neither value nor default: its Go zero value.
func normalise(t flagType, texts []string, set bool) (any, error) {
	if t.list {
		out := []string{}
		for _, text := range texts {
			if !set {
				break
			}
			for _, part := range splitEscaped(text, t.sep) {
				n, err := scalar(t, part)
				if err != nil {
					return nil, err
				}
				out = append(out, n)
			}
		}
		return out, nil
	}
	if len(texts) != 1 {
		return nil, fmt.Errorf("a list of %d values for a flag that takes one", len(texts))
	}
	if !set {
		return zero(t.kind), nil
	}
	return scalar(t, texts[0])
}

// zero is the text of a kind's Go zero value, what kong leaves in a flag
// that has no default.
func zero(k valueKind) string {
	switch k {
	case kindInt, kindUint, kindFloat:
		return "0"
	case kindBool:
		return "false"
	case kindDuration:
		return time.Duration(0).String()
	}
	return ""
}

// scalar normalises one value as kong decodes it (kong's mapper.go: ints and
// uints in any base strconv accepts with base 0, bools as true/1/yes and
// false/0/no, durations by time.ParseDuration).
func scalar(t flagType, s string) (string, error) {
	switch t.kind {
	case kindInt:
		n, err := strconv.ParseInt(s, 0, t.bits)
		if err != nil {
			return "", fmt.Errorf("%q: want a whole number of %d bits", s, t.bits)
		}
		return strconv.FormatInt(n, 10), nil
	case kindUint:
		n, err := strconv.ParseUint(s, 0, t.bits)
		if err != nil {
			return "", fmt.Errorf("%q: want a whole number >= 0 of %d bits", s, t.bits)
		}
		return strconv.FormatUint(n, 10), nil
	case kindFloat:
		x, err := strconv.ParseFloat(s, t.bits)
		if err != nil {
			return "", fmt.Errorf("%q: want a number", s)
		}
		return strconv.FormatFloat(x, 'g', -1, t.bits), nil
	case kindBool:
		return parseBool(s)
	case kindDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return "", fmt.Errorf("%q: want a duration such as 90s or 1h30m", s)
		}
		return d.String(), nil
	}
	return s, nil
}

func parseBool(s string) (string, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		return "true", nil
	case "false", "0", "no":
		return "false", nil
	}
	return "", fmt.Errorf("%q: want true or false", s)
}

// splitEscaped splits a list flag's value at sep as kong does (kong's
// mapper.go: SplitEscaped): a backslash before sep keeps it in the element,
// before anything else it stays itself; an empty last element is dropped.
// It takes linear time (a with: value can be megabytes long).
func splitEscaped(s string, sep rune) []string {
	if sep == -1 {
		return []string{s}
	}
	var out []string
	var b strings.Builder
	escaped := false
	for i, ch := range s {
		switch {
		case escaped:
			if ch != sep {
				b.WriteByte('\\')
			}
			b.WriteRune(ch)
			escaped = false
		case ch == '\\' && i < len(s)-1:
			escaped = true
		case ch == sep:
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteRune(ch)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
