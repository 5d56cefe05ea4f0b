package main

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

// stageDefs is the table of stage kinds: each is a subcommand (CLI below) and
// a pipeline `run:` kind (the registry passed to package pipeline).
var stageDefs = []stage.Def{download.Def, tokenize.Def, pack.Def, train.Def, eval.Def, sample.Def, genppl.Def}

// registry derives the stages' specs; a disagreement between a Def and its
// Options' tags is a programming error, caught by the tests.
func registry() stage.Registry {
	reg, err := stage.NewRegistry(stageDefs...)
	if err != nil {
		panic(err)
	}
	return reg
}

// stageHelp gives each stage command its Def's one-line help (kong vars).
func stageHelp() map[string]string {
	vars := map[string]string{}
	for _, d := range stageDefs {
		vars["help_"+d.Kind] = d.Help
	}
	return vars
}
