// Command mdlm is the masked diffusion language model toolkit: one binary whose
// subcommands are the pipeline stages. Each stage command is the stage's own
// Options struct (package stage declares the contract), so its flags, its
// pipeline `with:` keys and its cache key come from one declaration; this
// package binds the logger, the compute backend and provenance once, and is
// otherwise a thin client of the library.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/gomlx/compute"

	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages"
)

// Globals are flags every command accepts.
type Globals struct {
	LogLevel string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"MDLM_LOG_LEVEL"`
}

// CLI is the root of the command tree: the global flags. The commands are
// added from the table in commands.go.
type CLI struct {
	Globals
}

func main() {
	// SIGTERM: a scheduler preempting a job. The context reaches every stage,
	// the -j pool (children are signalled and waited for) and the Slurm wait.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startCPUProfile(os.Getenv("MDLM_CPUPROFILE"))
	if os.Getenv("MDLM_GENERIC_GRAPHS") == "1" {
		// The plain graphs XLA runs, on every backend (see internal/layers):
		// to compare with the Go backend's own forms.
		layers.UseGenericForms()
	}
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startCPUProfile writes a pprof CPU profile of the whole command to path
// ($MDLM_CPUPROFILE; `go tool pprof mdlm path` reads it). Empty: no profile.
func startCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mdlm: MDLM_CPUPROFILE=%s: %v\n", path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run parses args and executes the command; it returns the exit code. Standard
// output carries only a command's result; logs go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
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
	cmds := commands()
	parser, err := kong.New(&cli, append(append(kongCommands(cmds), urlPathMappers()...),
		kong.Name("mdlm"),
		kong.Description("Masked diffusion language models (MDLM, Sahoo et al. 2024): preprocess, train, evaluate and sample."),
		kong.UsageOnError(),
		kong.Exit(func(code int) { panic(exitCode(code)) }),
		kong.Writers(stdout, stderr),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)...)
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
	kctx.BindTo(ctx, (*context.Context)(nil))
	env := newEnv(logger)
	kctx.Bind(logger, &cli.Globals, env, stages.Registry())
	kctx.Stdout, kctx.Stderr = stdout, stderr
	if err := runSelected(ctx, kctx, cmds, env); err != nil {
		fmt.Fprintf(stderr, "mdlm: %v\n", err)
		return 1
	}
	return 0
}

// newEnv is what every stage gets: the logger, the tool version for
// manifests, the compute backend (created on first use) and progress bars.
func newEnv(log *slog.Logger) *stage.Env {
	return &stage.Env{Log: log, Tool: "mdlm " + toolVersion(),
		Backend: func() (compute.Backend, string, error) {
			b, err := backend.Shared()
			if err != nil {
				return nil, "", err
			}
			return b, backend.Describe(b), nil
		},
		Progress: func(label string) stage.Progress { return newProgress(label) }}
}

// exitCode carries kong's exit request (after --help) back to run.
type exitCode int

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
