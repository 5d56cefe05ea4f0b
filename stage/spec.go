package stage

import (
	"fmt"
	"sort"
	"strings"

	"github.com/alecthomas/kong"
)

// Digest modes of a file-valued flag (the digest:"..." tag).
const (
	DigestFile       = "file"         // must exist; content digested
	DigestNameOrFile = "name-or-file" // digested when it names an existing file
)

// IsReference reports whether a file-valued flag's value names something
// outside the file system, such as hub:org/name@revision: a scheme of two or
// more lower-case letters and a colon. Such a value enters the cache key as
// written (pin a revision to make it content-addressed).
func IsReference(v string) bool {
	scheme, _, ok := strings.Cut(v, ":")
	if !ok || len(scheme) < 2 {
		return false
	}
	for _, c := range scheme {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// Flag is one flag of a stage as the pipeline engine sees it, derived from the
// stage's Options by kong (the same grammar that parses the command line).
type Flag struct {
	Name       string // the flag name: --name, and the `with:` key
	Positional bool   // given as positional arguments (download's sources)
	Bool       bool
	List       bool
	Default    string
	Input      string // input name, for an input's flag
	Output     bool   // the -o flag
	Cosmetic   bool   // left out of the cache key
	Digest     string // "", DigestFile or DigestNameOrFile
	Pipeline   bool   // settable with `with:` (false for executor flags)
	// Stream marks an input flag tagged stream:"": the stage reads an s3://
	// value without a local copy (stream.go), so the pipeline engine passes
	// it the bucket's address of an output settled there (pipeline/stream.go).
	Stream bool
}

// Spec is a Def with its flags derived from its Options.
type Spec struct {
	Def
	Flags     []Flag // sorted by name
	Shardable bool   // Options implement Sharder
}

// Flag returns the named flag.
func (s Spec) Flag(name string) (Flag, bool) {
	for _, f := range s.Flags {
		if f.Name == name {
			return f, true
		}
	}
	return Flag{}, false
}

// InputFlag returns the flag of an input.
func (s Spec) InputFlag(input string) (Flag, bool) {
	for _, f := range s.Flags {
		if f.Input == input {
			return f, true
		}
	}
	return Flag{}, false
}

// Input returns the named input.
func (s Spec) Input(name string) (Input, bool) {
	for _, in := range s.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}

// PipelineKeys are the `with:` keys a pipeline may set, sorted.
func (s Spec) PipelineKeys() []string {
	var out []string
	for _, f := range s.Flags {
		if f.Pipeline {
			out = append(out, f.Name)
		}
	}
	return out
}

// SpecOf derives a stage's Spec from its Options' kong model and checks that
// the Def and the tags agree: one output flag, one flag per declared input and
// no input tag without a declared input.
func SpecOf(def Def) (Spec, error) {
	opts := def.New()
	k, err := kong.New(opts, kong.Name(def.Kind), kong.Exit(func(int) {}))
	if err != nil {
		return Spec{}, fmt.Errorf("stage %s: options: %w", def.Kind, err)
	}
	sp := Spec{Def: def}
	_, sp.Shardable = opts.(Sharder)
	if _, ok := opts.(Builder); !ok && !sp.Shardable {
		return Spec{}, fmt.Errorf("stage %s: options %T implement neither stage.Builder nor stage.Sharder", def.Kind, opts)
	}
	add := func(v *kong.Value, positional bool) {
		f := Flag{Name: v.Name, Positional: positional, Bool: v.IsBool(), List: v.IsSlice(), Default: v.Default,
			Input: v.Tag.Get("input"), Output: v.Tag.Has("output"), Cosmetic: v.Tag.Has("cosmetic"),
			Digest: v.Tag.Get("digest"), Stream: v.Tag.Has("stream")}
		f.Pipeline = !f.Output && v.Tag.Get("pipeline") != "-"
		sp.Flags = append(sp.Flags, f)
	}
	for _, fl := range k.Model.Flags {
		if fl.Name != "help" {
			add(fl.Value, false)
		}
	}
	for _, p := range k.Model.Positional {
		add(p, true)
	}
	sort.Slice(sp.Flags, func(i, j int) bool { return sp.Flags[i].Name < sp.Flags[j].Name })
	outputs := 0
	for _, f := range sp.Flags {
		if f.Output {
			outputs++
		}
		if f.Digest != "" && f.Digest != DigestFile && f.Digest != DigestNameOrFile {
			return sp, fmt.Errorf("stage %s: flag --%s: digest:%q, want %q or %q", def.Kind, f.Name, f.Digest, DigestFile, DigestNameOrFile)
		}
		if f.Stream && f.Input == "" {
			return sp, fmt.Errorf("stage %s: flag --%s is tagged stream:\"\" but is no input", def.Kind, f.Name)
		}
		if f.Input != "" {
			if _, ok := sp.Input(f.Input); !ok {
				return sp, fmt.Errorf("stage %s: flag --%s is tagged input:%q, which the Def does not declare", def.Kind, f.Name, f.Input)
			}
		}
	}
	if outputs != 1 {
		return sp, fmt.Errorf("stage %s: %d flags tagged output, want 1", def.Kind, outputs)
	}
	for _, in := range def.Inputs {
		if _, ok := sp.InputFlag(in.Name); !ok {
			return sp, fmt.Errorf("stage %s: input %q has no flag tagged input:%q", def.Kind, in.Name, in.Name)
		}
	}
	return sp, nil
}

// Registry is the table of stage kinds, built in one place (cmd/mdlm) and
// passed as a value.
type Registry map[string]Spec

// NewRegistry derives every Def's Spec.
func NewRegistry(defs ...Def) (Registry, error) {
	r := Registry{}
	for _, d := range defs {
		if _, dup := r[d.Kind]; dup {
			return nil, fmt.Errorf("stage %s declared twice", d.Kind)
		}
		sp, err := SpecOf(d)
		if err != nil {
			return nil, err
		}
		r[d.Kind] = sp
	}
	return r, nil
}

// Kinds lists the registered kinds, sorted.
func (r Registry) Kinds() []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
