package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/pipeline"
)

// RunCmd is `mdlm run`: execute a pipeline file with caching, here or on Slurm.
type RunCmd struct {
	File     string            `arg:"" help:"Pipeline file (pipelines/*.yaml)." type:"existingfile"`
	Set      map[string]string `help:"Override pipeline vars, e.g. --set steps=100." mapsep:","`
	CacheDir string            `default:".mdlm/cache" help:"Where stage outputs live, keyed by their cache key (on a shared file system for Slurm)." type:"path"`
	DryRun   bool              `help:"Only say which stages would run and why (with --executor slurm: print the sbatch commands)."`
	Executor string            `enum:"local,slurm" default:"local" help:"local: run stages here, in order; slurm: submit one job per stage (array jobs for shards) chained with afterok."`
	Stage    string            `help:"Run only this stage; the stages it needs must already be built (what each Slurm job runs)."`
	Shared   string            `help:"A cache shared between machines: stages found there verified are copied instead of run; stages that run are copied there." env:"MDLM_SHARED_CACHE" type:"path"`

	ShardIndex int      `help:"With --stage: this array task's shard." env:"SLURM_ARRAY_TASK_ID,JOB_COMPLETION_INDEX"`
	NumShards  int      `help:"With --stage: the number of array tasks." env:"SLURM_ARRAY_TASK_COUNT"`
	SbatchArg  []string `name:"sbatch-arg" help:"Extra sbatch argument for every job (repeatable), e.g. --sbatch-arg=--partition=gpu."`
	Sbatch     string   `default:"sbatch" help:"The sbatch command." env:"MDLM_SBATCH"`
	LogDir     string   `help:"Slurm job logs (default: <cache-dir>/slurm-logs)." type:"path"`
	Wait       bool     `help:"With --executor slurm: wait for the jobs and fail if a stage did not complete."`
}

// Run plans or runs the pipeline; each stage runs through this same command-line
// grammar, in process (locally and inside each Slurm job).
func (c *RunCmd) Run(kctx *kong.Context) error {
	f, err := pipeline.Load(c.File, c.Set)
	if err != nil {
		return err
	}
	e := &pipeline.Engine{CacheDir: c.CacheDir, Log: kctx.Stdout, Only: c.Stage, ShardIndex: c.ShardIndex, NumShards: c.NumShards, Shared: c.Shared,
		Exec: func(args []string) error {
			fmt.Fprintf(kctx.Stdout, "$ mdlm %v\n", args)
			if code := run(args, kctx.Stdout, stderrOf(kctx)); code != 0 {
				return fmt.Errorf("mdlm %s exited %d", args[0], code)
			}
			return nil
		}}
	if c.Executor == "slurm" && c.Stage == "" {
		return c.submit(kctx, e, f)
	}
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

// submit hands the pipeline to Slurm: the jobs run this binary with --stage.
func (c *RunCmd) submit(kctx *kong.Context, e *pipeline.Engine, f *pipeline.File) error {
	bin := os.Getenv("MDLM_BIN") // the binary as the compute nodes see it
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	cache, err := filepath.Abs(c.CacheDir)
	if err != nil {
		return err
	}
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	logDir := c.LogDir
	if logDir == "" {
		logDir = filepath.Join(cache, "slurm-logs")
	}
	runArgs := []string{"--cache-dir", cache}
	if c.Shared != "" {
		runArgs = append(runArgs, "--shared", c.Shared)
	}
	keys := make([]string, 0, len(c.Set))
	for k := range c.Set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		runArgs = append(runArgs, "--set", k+"="+c.Set[k])
	}
	s := &pipeline.Slurm{Bin: bin, Sbatch: c.Sbatch, Extra: c.SbatchArg, LogDir: logDir, Dir: dir, RunArgs: runArgs,
		Out: kctx.Stdout, DryRun: c.DryRun}
	ctx := context.Background()
	jobs, err := s.Submit(ctx, e, f)
	if err != nil || c.DryRun {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(kctx.Stdout, "every stage is cached; nothing submitted")
		return nil
	}
	if !c.Wait {
		fmt.Fprintf(kctx.Stdout, "submitted %d jobs; logs in %s\n", len(jobs), logDir)
		return nil
	}
	if err := s.Wait(ctx, jobs, 2*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(kctx.Stdout, "all %d jobs completed; logs in %s\n", len(jobs), logDir)
	return nil
}

func stderrOf(kctx *kong.Context) io.Writer {
	if kctx.Stderr != nil {
		return kctx.Stderr
	}
	return os.Stderr
}
