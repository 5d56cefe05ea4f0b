package main

import (
	"context"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages"
)

// command is one subcommand of mdlm. A stage's command is its Options struct
// itself, run through stage.Execute; the others are structs with a Run method
// that kong calls.
type command struct {
	name, help string
	target     any        // pointer to the kong command struct
	stage      *stage.Def // the stage this command runs, or nil
}

// commands is the command tree in the order of `mdlm --help`: the stages come
// from the stage table (package stages), one command each.
func commands() []command {
	cs := []command{
		{name: "version", help: "Print the mdlm version and its compute libraries.", target: &VersionCmd{}},
		{name: "doctor", help: "Report the compute backend and devices, and how to enable a GPU.", target: &DoctorCmd{}},
	}
	for i := range stages.All {
		d := &stages.All[i]
		cs = append(cs, command{name: d.Kind, help: d.Help, target: d.New(), stage: d})
	}
	return append(cs,
		command{name: "checkpoint", help: "Inspect, import and export model checkpoints.", target: &CheckpointCmd{}},
		command{name: "tokenizer", help: "Encode, decode and inspect with a tokenizer (built-in or tokenizer.json).", target: &TokenizerCmd{}},
		command{name: "run", help: "Run a pipeline file; stages whose inputs and parameters are unchanged are skipped.", target: &RunCmd{}},
		command{name: "export", help: "Render a pipeline for another scheduler (Kubernetes).", target: &ExportCmd{}},
		command{name: "show", help: "One table of every metrics/v1 result of pipelines (their lock files) or of a cache directory (--json, --csv, --md, --diff REV).", target: &ShowCmd{}},
		command{name: "ui", help: "Serve a local read-only web page: pipeline graph, live training curves, results table, samples.", target: &UICmd{}},
	)
}

// kongCommands registers cs with kong.
func kongCommands(cs []command) []kong.Option {
	opts := make([]kong.Option, len(cs))
	for i, c := range cs {
		opts[i] = kong.DynamicCommand(c.name, c.help, "", c.target)
	}
	return opts
}

// runSelected runs the command kctx selected: a stage through stage.Execute,
// any other command through its Run method.
func runSelected(ctx context.Context, kctx *kong.Context, cs []command, env *stage.Env) error {
	if sel := kctx.Selected(); sel != nil && sel.Parent == kctx.Model.Node {
		for _, c := range cs {
			if c.stage != nil && c.name == sel.Name {
				_, _, err := stage.Execute(ctx, env, *c.stage, c.target)
				return err
			}
		}
	}
	return kctx.Run()
}
