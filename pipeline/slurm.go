package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Slurm runs a pipeline on a Slurm cluster: one batch job per stage that is not
// cached, an array job (one task per shard) for a stage with `shards`, and
// `afterok` dependencies along the stage inputs, so the scheduler orders and
// places the work. Each job runs `mdlm run FILE --stage NAME` with the same vars
// and cache directory: a stage computes its cache key inside its job, once its
// inputs exist, and the lock file is updated under a file lock. The cache
// directory must be on a file system every node sees, or be a bucket
// (--cache-dir s3://, bucketcache.go): each job then computes in its node's
// local mirror and meets the others in the bucket, its store configuration
// and credentials coming from the environment sbatch passes on, never from
// its command line.
type Slurm struct {
	Bin    string   // the mdlm binary the jobs run (absolute path)
	Sbatch string   // the sbatch command; default "sbatch"
	Extra  []string // extra sbatch arguments (--partition, --time, --account, ...)
	LogDir string   // job logs: <stage>-<jobid>[_<task>].log
	Dir    string   // the jobs' working directory (relative paths in the pipeline file resolve here)
	// RunArgs are passed to `mdlm run` in each job after the file and stage:
	// --cache-dir and --set options.
	RunArgs []string
	Out     io.Writer
	DryRun  bool // print the sbatch commands instead of submitting
}

// Job is one submitted stage.
type Job struct {
	Stage string   `json:"stage"`
	ID    string   `json:"id"`
	Array int      `json:"array,omitempty"` // number of array tasks; 0 for a plain job
	Deps  []string `json:"deps,omitempty"`
	Args  []string `json:"args"` // the sbatch command line
}

// Submit plans f with e (which stages are cached), submits the others and
// returns their jobs in submission order.
func (s *Slurm) Submit(ctx context.Context, e *Engine, f *File) ([]Job, error) {
	plan, err := e.Plan(ctx, f)
	if err != nil {
		return nil, err
	}
	if !s.DryRun {
		if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("slurm: log dir: %w", err)
		}
	}
	abs, err := filepath.Abs(f.Path)
	if err != nil {
		return nil, err
	}
	ids := map[string]string{}
	var jobs []Job
	for _, d := range plan {
		if d.Cached {
			continue
		}
		st := f.Stages[d.Stage]
		j := Job{Stage: d.Stage}
		for _, in := range sortedKeys(st.Inputs) {
			if id, ok := ids[st.Inputs[in]]; ok && !contains(j.Deps, id) {
				j.Deps = append(j.Deps, id)
			}
		}
		if st.Shards > 1 {
			j.Array = st.Shards
		}
		cmd := append([]string{s.Bin, "run", abs, "--stage", d.Stage}, s.RunArgs...)
		j.Args = s.sbatchArgs(f, j, shellJoin(cmd))
		if s.DryRun {
			j.ID = fmt.Sprintf("<%s>", d.Stage)
			fmt.Fprintf(s.Out, "%s\n", shellJoin(j.Args))
		} else {
			if j.ID, err = s.sbatch(ctx, j.Args); err != nil {
				return jobs, fmt.Errorf("slurm: submitting stage %q: %w", d.Stage, err)
			}
			fmt.Fprintf(s.Out, "%-12s job %s%s%s\n", d.Stage, j.ID, arrayNote(j.Array), depNote(j.Deps))
		}
		ids[d.Stage] = j.ID
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func arrayNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (array of %d)", n)
}

func depNote(deps []string) string {
	if len(deps) == 0 {
		return ""
	}
	return " after " + strings.Join(deps, ", ")
}

// sbatchArgs is the command line that submits j.
func (s *Slurm) sbatchArgs(f *File, j Job, command string) []string {
	name := f.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(f.Path), filepath.Ext(f.Path))
	}
	log := filepath.Join(s.LogDir, j.Stage+"-%j.log")
	if j.Array > 0 {
		log = filepath.Join(s.LogDir, j.Stage+"-%A_%a.log")
	}
	args := []string{s.sbatchCmd(), "--parsable", "--job-name=mdlm-" + name + "-" + j.Stage, "--chdir=" + s.Dir,
		"--output=" + log, "--kill-on-invalid-dep=yes"}
	if len(j.Deps) > 0 {
		args = append(args, "--dependency=afterok:"+strings.Join(j.Deps, ":"))
	}
	if j.Array > 0 {
		args = append(args, fmt.Sprintf("--array=0-%d", j.Array-1))
	}
	args = append(args, s.Extra...)
	st := f.Stages[j.Stage]
	for _, k := range sortedKeys(st.Slurm) {
		args = append(args, "--"+k+"="+st.Slurm[k])
	}
	return append(args, "--wrap="+command)
}

func (s *Slurm) sbatchCmd() string {
	if s.Sbatch == "" {
		return "sbatch"
	}
	return s.Sbatch
}

// sbatch runs a submission and returns the job id (--parsable prints
// "id" or "id;cluster").
func (s *Slurm) sbatch(ctx context.Context, args []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	id, _, _ := strings.Cut(strings.TrimSpace(stdout.String()), ";")
	if id == "" || strings.ContainsAny(id, " \n") {
		return "", fmt.Errorf("%s printed %q, not a job id", args[0], stdout.String())
	}
	return id, nil
}

var (
	jobState = regexp.MustCompile(`JobState=(\S+)`)
	jobID    = regexp.MustCompile(`^JobId=(\S+)`)
)

// Wait blocks until every job has ended (polling scontrol) and returns an error
// naming the stages whose jobs did not complete. A stage whose input failed ends
// CANCELLED (submitted with --kill-on-invalid-dep).
func (s *Slurm) Wait(ctx context.Context, jobs []Job, poll time.Duration) error {
	// Task states by task job id, merged over polls: an array task that ended
	// early keeps its state after scontrol forgets it (MinJobAge).
	tasks := map[string]map[string]string{}
	done := map[string]bool{} // ended jobs are not asked again
	for {
		pending := false
		for _, j := range jobs {
			if done[j.ID] {
				continue
			}
			st, err := s.states(ctx, j.ID)
			if err != nil {
				return err
			}
			if tasks[j.ID] == nil {
				tasks[j.ID] = map[string]string{}
			}
			for id, x := range st {
				tasks[j.ID][id] = x
			}
			done[j.ID] = true
			for _, x := range tasks[j.ID] {
				if !ended(x) {
					done[j.ID], pending = false, true
				}
			}
		}
		if !pending {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	var failed []string
	for _, j := range jobs {
		var seen []string
		bad := false
		for _, x := range tasks[j.ID] {
			seen = append(seen, x)
			bad = bad || x != "COMPLETED"
		}
		if bad {
			failed = append(failed, fmt.Sprintf("%s (job %s: %s; log in %s)", j.Stage, j.ID, strings.Join(uniq(seen), ","), s.LogDir))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("slurm: stages did not complete: %s", strings.Join(failed, "; "))
	}
	return nil
}

// states maps each task of a job (one for a plain job) to its state.
func (s *Slurm) states(ctx context.Context, id string) (map[string]string, error) {
	scontrol := filepath.Join(filepath.Dir(s.sbatchCmd()), "scontrol")
	if !strings.Contains(s.sbatchCmd(), "/") {
		scontrol = "scontrol"
	}
	out, err := exec.CommandContext(ctx, scontrol, "show", "job", "-o", id).Output()
	if err != nil {
		return nil, fmt.Errorf("slurm: scontrol show job %s: %w (finished jobs are kept only minutes; is MinJobAge short?)", id, err)
	}
	st := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		state := jobState.FindStringSubmatch(line)
		task := jobID.FindStringSubmatch(line)
		if state != nil && task != nil {
			st[task[1]] = state[1]
		}
	}
	if len(st) == 0 {
		return nil, fmt.Errorf("slurm: no JobState for job %s in %q", id, out)
	}
	return st, nil
}

func ended(state string) bool {
	switch state {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING":
		return false
	}
	return true
}

func uniq(xs []string) []string {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	out := make([]string, 0, len(m))
	for x := range m {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

// shellJoin quotes args for sh (sbatch --wrap runs its string with sh -c).
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
