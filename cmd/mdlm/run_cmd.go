package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/pipeline"
)

// RunCmd is `mdlm run`: execute a pipeline file with caching.
type RunCmd struct {
	File     string            `arg:"" help:"Pipeline file (pipelines/*.yaml)." type:"existingfile"`
	Set      map[string]string `help:"Override pipeline vars, e.g. --set steps=100." mapsep:","`
	CacheDir string            `default:".mdlm/cache" help:"Where stage outputs live, keyed by their cache key." type:"path"`
	DryRun   bool              `help:"Only say which stages would run and why."`
}

// Run plans or runs the pipeline; each stage runs through this same command-line
// grammar, in process.
func (c *RunCmd) Run(kctx *kong.Context) error {
	f, err := pipeline.Load(c.File, c.Set)
	if err != nil {
		return err
	}
	e := &pipeline.Engine{CacheDir: c.CacheDir, Log: kctx.Stdout, Exec: func(args []string) error {
		fmt.Fprintf(kctx.Stdout, "$ mdlm %v\n", args)
		if code := run(args, kctx.Stdout, stderrOf(kctx)); code != 0 {
			return fmt.Errorf("mdlm %s exited %d", args[0], code)
		}
		return nil
	}}
	if c.DryRun {
		_, err = e.Plan(f)
		return err
	}
	ds, err := e.Run(f)
	if err != nil {
		return err
	}
	for _, d := range ds {
		fmt.Fprintf(kctx.Stdout, "%-12s %s\n", d.Stage, d.Out)
	}
	return nil
}

func stderrOf(kctx *kong.Context) io.Writer {
	if kctx.Stderr != nil {
		return kctx.Stderr
	}
	return os.Stderr
}
