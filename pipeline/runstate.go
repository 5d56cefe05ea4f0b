package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// The run state (issue 24): <pipeline file>.runstate.json beside the lock
// file records, stage by stage, what `mdlm run` is doing or last failed at:
// a stage that is running (with the process that runs it) or that failed
// (with its error, stripped of credentials), for `mdlm ui` to show and `mdlm
// show` to leave out. A stage's record is removed when it is published (or
// found published); an interrupted stage (Ctrl-C) leaves no failure behind.
// Like the lock file it is a record, never the source of truth: outputs are
// verified on their own, and a file that cannot be read is taken as empty.

// Run states a record holds.
const (
	StateRunning = "running"
	StateFailed  = "failed"
)

// Limits on the run state: the file read (refused unread above), one error
// kept (the rest cut, marked), and the records kept (the oldest dropped).
const (
	MaxRunStateBytes = 4 << 20
	MaxErrorBytes    = 4 << 10
	MaxRunStates     = 10_000
)

// StageState is one stage's record in the run state.
type StageState struct {
	State string    `json:"state"` // StateRunning or StateFailed
	Key   string    `json:"key"`   // the cache key of the definition that ran
	Error string    `json:"error,omitempty"`
	Time  time.Time `json:"time"`
	PID   int       `json:"pid,omitempty"`
	Host  string    `json:"host,omitempty"`
}

// RunState is a pipeline's run state: stage name -> its record.
type RunState map[string]StageState

// RunStatePath is where a pipeline's run state lives: beside its lock file.
func RunStatePath(pipelinePath string) string { return pipelinePath + ".runstate.json" }

// ReadRunState reads the run state of the pipeline file at pipelinePath: none
// is an empty state; one over MaxRunStateBytes, or that does not parse, is an
// error naming the file.
func ReadRunState(pipelinePath string) (RunState, error) {
	path := RunStatePath(pipelinePath)
	raw, err := readAtMost(path, MaxRunStateBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return RunState{}, nil
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("pipeline run state %s: more than %d bytes (remove it: it only records running and failed stages)", path, MaxRunStateBytes)
	case err != nil:
		return nil, fmt.Errorf("pipeline run state %s: %w", path, err)
	}
	rs := RunState{}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("pipeline run state %s: %w", path, err)
	}
	return rs, nil
}

// Alive reports whether a running record's process still runs: on this host,
// a process of that id exists. A record from another host is taken as alive
// (it cannot be checked from here).
func (s StageState) Alive() bool {
	if s.State != StateRunning || s.PID <= 0 {
		return false
	}
	if host, _ := os.Hostname(); s.Host != "" && s.Host != host {
		return true
	}
	err := syscall.Kill(s.PID, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// markRunning records that this process is building the step's stage. A
// shard does not: several processes share the stage.
func (x *executor) markRunning(s *step) {
	if s.sharded {
		return
	}
	host, _ := os.Hostname()
	x.setRunState(s.st.Name, &StageState{State: StateRunning, Key: s.Key, Time: time.Now().UTC(), PID: os.Getpid(), Host: host})
}

// markFailed records the stage's failure with its error, or, when the run was
// interrupted (ctx ended), removes its running record: an interrupt is not a
// failure of the stage.
func (x *executor) markFailed(ctxErr error, s *step, err error) {
	if ctxErr != nil {
		x.setRunState(s.st.Name, nil)
		return
	}
	host, _ := os.Hostname()
	x.setRunState(s.st.Name, &StageState{State: StateFailed, Key: s.Key, Error: Redact(err.Error()), Time: time.Now().UTC(),
		PID: os.Getpid(), Host: host})
}

// clearRunState removes the records of stages now settled, in one update.
func (x *executor) clearRunState(names ...string) {
	changes := make(map[string]*StageState, len(names))
	for _, name := range names {
		changes[name] = nil
	}
	x.updateRunState(changes)
}

// setRunState writes (nil: removes) a stage's record.
func (x *executor) setRunState(name string, st *StageState) {
	x.updateRunState(map[string]*StageState{name: st})
}

// updateRunState applies changes; the run state is a record for people, so
// failing to write it is logged, never fatal to the run.
func (x *executor) updateRunState(changes map[string]*StageState) {
	if err := updateRunState(x.f.Path, changes); err != nil {
		slog.Warn("pipeline run state not updated", "pipeline", x.f.Path, "err", err)
	}
}

// updateRunState merges records into the run state (a nil record removes the
// stage's) under an exclusive flock on the lock file's guard (lockfile.go):
// scheduler jobs and -j children update it at once. Changes that only remove
// records absent from the file (or from a file that does not exist) write
// nothing; a state left empty is removed.
func updateRunState(pipelinePath string, changes map[string]*StageState) error {
	path := RunStatePath(pipelinePath)
	if onlyRemovals(changes) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	unlock, err := flockFile(pipelinePath + ".lock.json.flock") // the lock file's guard: never held while this runs
	if err != nil {
		return err
	}
	defer unlock()
	rs, err := ReadRunState(pipelinePath)
	if err != nil {
		rs = RunState{} // unreadable: start afresh (it is a record)
	}
	changed := false
	for name, st := range changes {
		if _, ok := rs[name]; st == nil && ok {
			delete(rs, name)
			changed = true
		} else if st != nil {
			rs[name] = *st
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if len(rs) == 0 { // nothing running or failed: no file left behind
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pipeline run state %s: %w", path, err)
		}
		return nil
	}
	rs.trim()
	raw, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline run state %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}

func onlyRemovals(changes map[string]*StageState) bool {
	for _, st := range changes {
		if st != nil {
			return false
		}
	}
	return true
}

// trim drops the oldest records beyond MaxRunStates.
func (rs RunState) trim() {
	for len(rs) > MaxRunStates {
		oldest := ""
		for name, st := range rs {
			if oldest == "" || st.Time.Before(rs[oldest].Time) {
				oldest = name
			}
		}
		delete(rs, oldest)
	}
}

// flockFile takes an exclusive flock on path (created if missing) and returns
// its release. A file system without locks is tolerated, as for the lock file.
func flockFile(path string) (func(), error) {
	guard, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pipeline run state: %w", err)
	}
	switch err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); {
	case err == nil:
		return func() { syscall.Flock(int(guard.Fd()), syscall.LOCK_UN); guard.Close() }, nil
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		return func() { guard.Close() }, nil
	default:
		guard.Close()
		return nil, fmt.Errorf("pipeline run state %s: %w", path, err)
	}
}

// secretPatterns match credentials an error may carry: URL user info,
// Authorization values, Hugging Face tokens, AWS key ids and secrets, signed
// URL query parameters, and key=value pairs named like secrets.
var secretPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(://)[^/\s:@]+:[^/\s@]+@`),
	regexp.MustCompile(`(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}`),
	regexp.MustCompile(`\bhf_[A-Za-z0-9]{8,}`),
	regexp.MustCompile(`\b(AKIA|ASIA)[A-Z0-9]{12,}`),
	regexp.MustCompile(`(?i)(x-amz-(signature|credential|security-token)|signature|sig|token|access_token|api_key|apikey|password|secret)=[^&\s"']+`),
	regexp.MustCompile(`(?i)\b(aws_secret_access_key|aws_session_token|hf_token|password|secret)(\s*[:=]\s*)\S+`),
}

// secretEnv names environment variables whose values never go into a record.
var secretEnv = []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"}

// redactWindow bounds the text the patterns scan (a 4 MiB message took
// 1.7 s): the message is first cut at a space before it, so no credential is
// split, and only MaxErrorBytes of the result are kept anyway.
const redactWindow = 64 << 10

// Redact strips credentials from an error message (the values of secretEnv,
// then secretPatterns) and cuts it to MaxErrorBytes at a character boundary.
func Redact(msg string) string {
	for _, name := range secretEnv {
		if v := os.Getenv(name); len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	if len(msg) > redactWindow {
		cut := strings.LastIndexAny(msg[:redactWindow], " \t\n")
		msg = msg[:max(cut, 0)] + " [cut]"
	}
	for i, re := range secretPatterns {
		switch i {
		case 0:
			msg = re.ReplaceAllString(msg, "${1}[redacted]@")
		case 4:
			msg = re.ReplaceAllStringFunc(msg, func(m string) string { k, _, _ := strings.Cut(m, "="); return k + "=[redacted]" })
		case 5:
			msg = re.ReplaceAllString(msg, "${1}${2}[redacted]")
		default:
			msg = re.ReplaceAllString(msg, "[redacted]")
		}
	}
	if len(msg) > MaxErrorBytes {
		cut := MaxErrorBytes
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + " [cut]"
	}
	return msg
}
