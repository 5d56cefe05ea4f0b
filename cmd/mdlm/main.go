// Command mdlm is the masked diffusion language model toolkit: one binary whose
// subcommands are the pipeline stages. Each subcommand is a thin adapter over a
// library package under stages/ (the CLI is one more client of the library).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// Globals are flags every command accepts.
type Globals struct {
	LogLevel string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"MDLM_LOG_LEVEL"`
}

// CLI is the command tree.
type CLI struct {
	Globals

	Version    VersionCmd    `cmd:"" help:"Print the mdlm version and its compute libraries."`
	Doctor     DoctorCmd     `cmd:"" help:"Report the compute backend and devices, and how to enable a GPU."`
	Download   DownloadCmd   `cmd:"" help:"Fetch a registered dataset from the hub, or read local files, into a text/v1 artifact."`
	Tokenize   TokenizeCmd   `cmd:"" help:"Tokenize a text/v1 artifact into tokens/v1 (sharded, all cores)."`
	Pack       PackCmd       `cmd:"" help:"Pack tokens/v1 into fixed-length blocks (packed/v1: Arrow and Parquet)."`
	Train      TrainCmd      `cmd:"" help:"Train MDLM, D3PM, SEDD or the AR baseline on packed/v1 data (resumable)."`
	Eval       EvalCmd       `cmd:"" help:"Perplexity (NELBO bound for diffusion) of a checkpoint on packed/v1 data."`
	Checkpoint CheckpointCmd `cmd:"" help:"Inspect, import and export model checkpoints."`
	Sample     SampleCmd     `cmd:"" help:"Generate samples from a checkpoint (ddpm, ddpm_cache, ddpm_rowcache, analytic, ar)."`
	Run        RunCmd        `cmd:"" help:"Run a pipeline file; stages whose inputs and parameters are unchanged are skipped."`
	Export     ExportCmd     `cmd:"" help:"Render a pipeline for another scheduler (Kubernetes)."`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and executes the command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitCode)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("mdlm"),
		kong.Description("Masked diffusion language models (MDLM, Sahoo et al. 2024): preprocess, train, evaluate and sample."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.Writers(stdout, stderr),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "mdlm: %v\n", err)
		return 2
	}
	logger := newLogger(stderr, cli.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // SIGTERM: schedulers preempting a job
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(logger, &cli.Globals)
	kctx.Stdout = stdout
	if err := kctx.Run(); err != nil {
		fmt.Fprintf(stderr, "mdlm: %v\n", err)
		return 1
	}
	return 0
}

// exitCode carries kong's exit request (after --help) back to run.
type exitCode int

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
