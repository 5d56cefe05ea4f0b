package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/stage"
)

// RunCmd is `mdlm run`: execute a pipeline file with caching, here or on Slurm.
type RunCmd struct {
	File     string            `arg:"" help:"Pipeline file (pipelines/*.yaml)." type:"existingfile"`
	Set      map[string]string `help:"Override pipeline vars, e.g. --set steps=100." mapsep:","`
	CacheDir string            `default:".mdlm/cache" help:"Where stage outputs live, keyed by their cache key (on a shared file system for Slurm), or s3://bucket/prefix: the bucket is the cache and stages compute in a local mirror under $MDLM_CACHE/s3/."`
	DryRun   bool              `help:"Only say which stages would run and why (with --executor slurm: print the sbatch commands)."`
	Executor string            `enum:"local,slurm" default:"local" help:"local: run stages here, in order; slurm: submit one job per stage (array jobs for shards) chained with afterok."`
	Stage    string            `help:"Run only this stage; the stages it needs must already be built (what each Slurm job runs)."`
	Shared   string            `help:"A cache shared between machines (a directory or s3://bucket/prefix): stages found there verified are copied instead of run; stages that run are copied there." env:"MDLM_SHARED_CACHE"`

	ShardIndex int           `help:"With --stage: this array task's shard." env:"SLURM_ARRAY_TASK_ID,JOB_COMPLETION_INDEX"`
	NumShards  int           `help:"With --stage: the number of array tasks." env:"SLURM_ARRAY_TASK_COUNT"`
	SbatchArg  []string      `name:"sbatch-arg" sep:"none" help:"Extra sbatch argument for every job (repeatable; commas stay inside the argument), e.g. --sbatch-arg=--partition=gpu."`
	Sbatch     string        `default:"sbatch" help:"The sbatch command." env:"MDLM_SBATCH"`
	LogDir     string        `help:"Slurm job logs (default: <cache-dir>/slurm-logs)." type:"path"`
	Wait       bool          `help:"With --executor slurm: wait for the jobs and fail if a stage did not complete."`
	Jobs       int           `short:"j" default:"1" help:"Local executor: run up to this many stages (or shards) at once, each as its own mdlm process."`
	WaitInputs time.Duration `help:"With --stage: wait up to this long for the stages it needs to be built by other processes (e.g. 72h on Kubernetes)."`
	Poll       time.Duration `default:"10s" hidden:"" help:"How often --wait-inputs looks."`
	JSON       bool          `name:"json" help:"Print the decisions (stage, key, output, cached, reasons, seconds) as JSON on standard output; the log goes to standard error."`
}

// Run plans or runs the pipeline; each stage runs through this same command-line
// grammar, in process (locally and inside each Slurm job).
func (c *RunCmd) Run(ctx context.Context, kctx *kong.Context, reg stage.Registry) error {
	f, err := pipeline.Load(c.File, c.Set, reg)
	if err != nil {
		return err
	}
	// Logs go to standard error in every mode (issue 19, defect 14): standard
	// output carries only results (the outputs, the plan, or the JSON).
	log := stderrOf(kctx)
	e := &pipeline.Engine{CacheDir: c.CacheDir, Log: log, Only: c.Stage, ShardIndex: c.ShardIndex, NumShards: c.NumShards, Shared: c.Shared,
		WaitInputs: c.WaitInputs, Poll: c.Poll,
		Exec: func(ctx context.Context, args []string) error {
			fmt.Fprintf(log, "$ mdlm %v\n", args)
			// In process, with this process's context; a stage's standard
			// output joins the log (stages print nothing there themselves).
			// Its standard error still reaches the terminal; the last
			// "mdlm: ..." line it wrote becomes the error, which the run
			// state records (redacted) for `mdlm ui` (issue 24).
			tail := &lastErrLine{w: stderrOf(kctx)}
			if code := run(ctx, args, log, tail); code != 0 {
				if ctx.Err() != nil {
					return fmt.Errorf("mdlm %s interrupted: %w", args[0], ctx.Err())
				}
				return stageExitError(args[0], code, tail.Line())
			}
			return nil
		}}
	if err := e.OpenCaches(ctx); err != nil {
		return err
	}
	if c.Executor == "slurm" && c.Stage == "" {
		return c.submit(ctx, kctx, e, f, log)
	}
	var ds []pipeline.Decision
	switch {
	case c.Jobs > 1 && c.Stage == "" && !c.DryRun:
		if err := c.pool(ctx, kctx, f, log); err != nil {
			return err
		}
		e.Log = nil
		ds, err = e.Plan(ctx, f) // every output is there now: its key and directory
	case c.DryRun:
		e.Log = nil // the plan is the result, printed below
		ds, err = e.Plan(ctx, f)
	default:
		ds, err = e.Run(ctx, f)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(kctx.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ds)
	}
	if c.DryRun {
		for _, d := range ds {
			pipeline.WriteDecision(kctx.Stdout, d)
		}
		return nil
	}
	for _, d := range ds {
		fmt.Fprintf(kctx.Stdout, "%-12s %s\n", d.Stage, d.Out)
	}
	summarize(kctx.Stdout, f, ds)
	return nil
}

// binary is the mdlm executable that stage processes run.
func binary() (string, error) {
	if bin := os.Getenv("MDLM_BIN"); bin != "" { // as compute nodes see it
		return bin, nil
	}
	return os.Executable()
}

// stageArgs are what `mdlm run FILE --stage NAME` needs besides the file and
// stage to see the pipeline as this process does: the cache dirs and vars.
func (c *RunCmd) stageArgs() ([]string, error) {
	cache, err := absUnlessURL(c.CacheDir)
	if err != nil {
		return nil, err
	}
	args := []string{"--cache-dir", cache}
	if c.Shared != "" {
		shared, err := absUnlessURL(c.Shared)
		if err != nil {
			return nil, err
		}
		args = append(args, "--shared", shared)
	}
	return append(args, setArgs(c.Set)...), nil
}

// absUnlessURL makes a directory absolute (jobs may start elsewhere) and
// leaves an s3:// location as it is.
func absUnlessURL(loc string) (string, error) {
	if objstore.IsURL(loc) {
		return loc, nil
	}
	return filepath.Abs(loc)
}

// setArgs renders var overrides as --set options, sorted.
func setArgs(set map[string]string) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, "--set", k+"="+set[k])
	}
	return args
}

// pool runs the stages here, up to --jobs at once, each in its own process
// (stages keep process-wide settings such as the GC target and signal handling).
// Their output, each line behind its task's name, goes to log.
func (c *RunCmd) pool(ctx context.Context, kctx *kong.Context, f *pipeline.File, log io.Writer) error {
	bin, err := binary()
	if err != nil {
		return err
	}
	file, err := filepath.Abs(c.File)
	if err != nil {
		return err
	}
	extra, err := c.stageArgs()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	start := time.Now()
	err = pipeline.RunPool(ctx, f, c.Jobs, func(ctx context.Context, t pipeline.Task) error {
		args := append([]string{"run", file, "--stage", t.Stage}, extra...)
		if t.Shards > 0 {
			args = append(args, fmt.Sprintf("--shard-index=%d", t.Shard), fmt.Sprintf("--num-shards=%d", t.Shards))
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		// On Ctrl-C or SIGTERM each child gets SIGTERM (a training stage
		// checkpoints and exits) and is waited for; SIGKILL after a minute.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = time.Minute
		out := &prefixWriter{prefix: "[" + t.String() + "] ", w: log, mu: &mu}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		out.flush()
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "pipeline %s done in %.1fs\n", f.Name, time.Since(start).Seconds())
	return nil
}

// prefixWriter writes whole lines, each behind a prefix, under a shared lock.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.Write([]byte("\n"))
	}
}

// submit hands the pipeline to Slurm: the jobs run this binary with --stage.
// Its report (job ids, sbatch commands with --dry-run) goes to log, standard
// error; with --json the jobs go to standard output as JSON.
func (c *RunCmd) submit(ctx context.Context, kctx *kong.Context, e *pipeline.Engine, f *pipeline.File, log io.Writer) error {
	bin, err := binary()
	if err != nil {
		return err
	}
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	logDir := c.LogDir
	if logDir == "" {
		logDir = filepath.Join(c.CacheDir, "slurm-logs")
		if objstore.IsURL(c.CacheDir) { // logs stay on the shared file system
			logDir = filepath.Join(".mdlm", "slurm-logs")
		}
	}
	if logDir, err = filepath.Abs(logDir); err != nil {
		return err
	}
	runArgs, err := c.stageArgs()
	if err != nil {
		return err
	}
	s := &pipeline.Slurm{Bin: bin, Sbatch: c.Sbatch, Extra: c.SbatchArg, LogDir: logDir, Dir: dir, RunArgs: runArgs,
		Out: log, DryRun: c.DryRun}
	jobs, err := s.Submit(ctx, e, f)
	if err == nil && c.JSON { // the jobs submitted (or planned), whatever waiting brings
		defer func() {
			enc := json.NewEncoder(kctx.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(jobs)
		}()
	}
	if err != nil || c.DryRun {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(log, "every stage is cached; nothing submitted")
		return nil
	}
	if !c.Wait {
		fmt.Fprintf(log, "submitted %d jobs; logs in %s\n", len(jobs), logDir)
		return nil
	}
	if err := s.Wait(ctx, jobs, 2*time.Second); err != nil {
		if ctx.Err() != nil {
			ids := make([]string, len(jobs))
			for i, j := range jobs {
				ids[i] = j.ID
			}
			fmt.Fprintf(stderrOf(kctx), "stopped waiting; %d jobs are left running on Slurm: %s\nto cancel them: scancel %s\n",
				len(jobs), strings.Join(ids, " "), strings.Join(ids, " "))
		}
		return err
	}
	fmt.Fprintf(log, "all %d jobs completed; logs in %s\n", len(jobs), logDir)
	return nil
}

func stderrOf(kctx *kong.Context) io.Writer {
	if kctx.Stderr != nil {
		return kctx.Stderr
	}
	return os.Stderr
}

// stageExitError is an in-process stage's failure: its exit code and, when it
// wrote one, its own last "mdlm: ..." message.
func stageExitError(name string, code int, line string) error {
	if line == "" {
		return fmt.Errorf("mdlm %s exited %d", name, code)
	}
	return fmt.Errorf("mdlm %s exited %d: %s", name, code, line)
}

// maxErrLine bounds the stage error line kept in memory and in the run state.
const maxErrLine = 4 << 10

// lastErrLine passes everything to w and keeps the last line that starts with
// "mdlm: " (main.go's error format), at most maxErrLine bytes of it.
type lastErrLine struct {
	w    io.Writer
	cur  []byte // the line being written, truncated to maxErrLine
	long bool   // cur was truncated
	last string
}

func (l *lastErrLine) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	for _, c := range b[:n] {
		if c == '\n' {
			l.endLine()
			continue
		}
		if len(l.cur) < maxErrLine {
			l.cur = append(l.cur, c)
		} else {
			l.long = true
		}
	}
	return n, err
}

// endLine keeps the finished line if it is an error message.
func (l *lastErrLine) endLine() {
	if line, ok := strings.CutPrefix(string(l.cur), "mdlm: "); ok {
		line = strings.ToValidUTF8(strings.TrimSpace(line), "?")
		if l.long {
			line += " ..."
		}
		l.last = line
	}
	l.cur, l.long = l.cur[:0], false
}

// Line is the last "mdlm: " message without its prefix, or "".
func (l *lastErrLine) Line() string {
	if len(l.cur) > 0 {
		l.endLine()
	}
	return l.last
}
