// Package stages is the table of stage kinds. Every `mdlm <kind>` command and
// every pipeline `run:` kind comes from All, in this order (the order of
// `mdlm --help`). A new stage is a package under stages/ that declares a
// stage.Def, and one line in All; docs/architecture.md walks through it.
package stages

import (
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages/download"
	"github.com/mdlm-go/mdlm/stages/eval"
	"github.com/mdlm-go/mdlm/stages/genppl"
	"github.com/mdlm-go/mdlm/stages/pack"
	"github.com/mdlm-go/mdlm/stages/sample"
	"github.com/mdlm-go/mdlm/stages/tokenize"
	"github.com/mdlm-go/mdlm/stages/train"
	"github.com/mdlm-go/mdlm/stages/traintok"
)

// All is every stage kind.
var All = []stage.Def{
	download.Def,
	traintok.Def,
	tokenize.Def,
	pack.Def,
	train.Def,
	eval.Def,
	sample.Def,
	genppl.Def,
}

// Registry is the engine's view of All: each Def with the Spec derived from
// its Options. A Def whose Options disagree with it (see stage.SpecOf) is a
// programming error, which TestRegistry catches; Registry panics on it.
func Registry() stage.Registry {
	reg, err := stage.NewRegistry(All...)
	if err != nil {
		panic(err)
	}
	return reg
}
