package pipeline

import (
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages/download"
	"github.com/mdlm-go/mdlm/stages/eval"
	"github.com/mdlm-go/mdlm/stages/genppl"
	"github.com/mdlm-go/mdlm/stages/pack"
	"github.com/mdlm-go/mdlm/stages/sample"
	"github.com/mdlm-go/mdlm/stages/tokenize"
	"github.com/mdlm-go/mdlm/stages/train"
)

// reg is the real stage registry, for tests that load the shipped pipeline
// files (package pipeline itself imports no stage: the command builds the
// registry and passes it in).
var reg = func() stage.Registry {
	r, err := stage.NewRegistry(download.Def, tokenize.Def, pack.Def, train.Def, eval.Def, sample.Def, genppl.Def)
	if err != nil {
		panic(err)
	}
	return r
}()
