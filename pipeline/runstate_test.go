package pipeline

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// A stage that fails is recorded as failed with its error and key; while it
// runs it is recorded as running by this process; once it succeeds its record
// is gone. An interrupted stage leaves no failure.
func TestRunStateRecordsFailureAndClearsOnSuccess(t *testing.T) {
	dir := t.TempDir()
	f := textPipeline(t, dir, "")
	var during RunState
	fail := errors.New("out of memory at step 3 (https://user:pa55word@example.com/x?X-Amz-Signature=abc123)")
	e := &Engine{CacheDir: dir + "/cache", Exec: func(_ context.Context, args []string) error {
		var err error
		if during, err = ReadRunState(f.Path); err != nil {
			t.Fatal(err)
		}
		return fail
	}}
	ds, err := e.Plan(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), f); !errors.Is(err, fail) {
		t.Fatalf("run: %v, want the stage's error", err)
	}
	if r := during["text"]; r.State != StateRunning || r.PID != os.Getpid() || r.Key != ds[0].Key || !r.Alive() {
		t.Errorf("while running: %+v, want running by this process with key %s", r, ds[0].Key)
	}
	rs, err := ReadRunState(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	r := rs["text"]
	if r.State != StateFailed || r.Key != ds[0].Key || !strings.Contains(r.Error, "out of memory at step 3") || r.Time.IsZero() {
		t.Errorf("after the failure: %+v", r)
	}
	if strings.Contains(r.Error, "pa55word") || strings.Contains(r.Error, "abc123") {
		t.Errorf("credentials kept in the record: %q", r.Error)
	}

	runs := 0
	e = fakeEngine(t, dir+"/cache", &runs)
	if _, err := e.Run(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if rs, _ := ReadRunState(f.Path); len(rs) != 0 {
		t.Errorf("after success: %+v, want no records", rs)
	}
	if _, err := os.Stat(RunStatePath(f.Path)); !os.IsNotExist(err) {
		t.Errorf("an empty run state is left behind: %v", err)
	}

	// Interrupted: the running record goes, no failure is left.
	f2 := textPipeline(t, t.TempDir(), "")
	ctx, cancel := context.WithCancel(context.Background())
	e = &Engine{CacheDir: dir + "/cache2", Exec: func(context.Context, []string) error { cancel(); return context.Canceled }}
	e.Run(ctx, f2)
	if rs, _ := ReadRunState(f2.Path); len(rs) != 0 {
		t.Errorf("after an interrupt: %+v, want no records", rs)
	}
}

// A failure record is cleared when the stage is later found cached (another
// run built it).
func TestRunStateClearedWhenCached(t *testing.T) {
	dir := t.TempDir()
	f := textPipeline(t, dir, "")
	runs := 0
	e := fakeEngine(t, dir+"/cache", &runs)
	if _, err := e.Run(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	if err := updateRunState(f.Path, map[string]*StageState{"text": {State: StateFailed, Error: "old"}, "gone": {State: StateFailed}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), f); err != nil || runs != 1 {
		t.Fatalf("rerun: %v, %d runs", err, runs)
	}
	rs, err := ReadRunState(f.Path)
	if err != nil || len(rs) != 1 || rs["gone"].State != StateFailed {
		t.Errorf("run state %+v (%v), want only the other stage's record", rs, err)
	}
}

// Hostile or broken run state files: too large is an error naming the file,
// garbage an error; a write over garbage starts afresh.
func TestReadRunStateHostile(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/p.yaml"
	cases := []struct {
		body string
		want string
	}{
		{"{not json", "p.yaml.runstate.json"},
		{strings.Repeat(" ", MaxRunStateBytes+1), "more than"},
		{`{"a": {"state": "failed", "time": "2026-01-02T03:04:05Z"}}`, ""},
	}
	for _, c := range cases {
		os.WriteFile(RunStatePath(p), []byte(c.body), 0o644)
		_, err := ReadRunState(p)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%.20q: %v, want %q", c.body, err, c.want)
		}
	}
	os.WriteFile(RunStatePath(p), []byte("{not json"), 0o644)
	if err := updateRunState(p, map[string]*StageState{"s": {State: StateFailed}}); err != nil {
		t.Fatal(err)
	}
	if rs, err := ReadRunState(p); err != nil || rs["s"].State != StateFailed {
		t.Errorf("%+v %v", rs, err)
	}
}

// Redact strips credentials and bounds the length.
func TestRedact(t *testing.T) {
	t.Setenv("HF_TOKEN", "hf_abcdefghijklmnop")
	cases := []struct{ in, gone string }{
		{"GET https://alice:s3cret@host/x failed", "s3cret"},
		{"401 for token hf_abcdefghijklmnop", "hf_abcdefghijklmnop"},
		{"header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30", "eyJhbGciOiJIUzI1NiJ9"},
		{"key AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"},
		{"url ?X-Amz-Credential=AKIDX%2F20260101&X-Amz-Signature=deadbeef", "deadbeef"},
		{"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"},
		{"hf_zzzzzzzzzzzzzzzzzzzz leaked", "hf_zzzzzzzzzzzzzzzzzzzz"},
	}
	for _, c := range cases {
		if got := Redact(c.in); strings.Contains(got, c.gone) || !strings.Contains(got, "[redacted]") {
			t.Errorf("Redact(%q) = %q", c.in, got)
		}
	}
	if got := Redact("plain error: no such file"); got != "plain error: no such file" {
		t.Errorf("a plain error changed: %q", got)
	}
	long := strings.Repeat("é", MaxErrorBytes)
	if got := Redact(long); len(got) > MaxErrorBytes+len(" [cut]") || !strings.HasSuffix(got, " [cut]") || !strings.HasPrefix(got, "é") {
		t.Errorf("long error: %d bytes", len(got))
	}
}

// A long message is cut at a space before the patterns run, so a credential
// at the cut is dropped whole, never left half visible; it stays fast.
func TestRedactLong(t *testing.T) {
	msg := strings.Repeat("word ", redactWindow/5-2) + "token=sekrit-value-xyz " + strings.Repeat("://a:b@", 1<<19)
	start := time.Now()
	got := Redact(msg)
	if strings.Contains(got, "sekrit") || strings.Contains(got, ":b@") || len(got) > MaxErrorBytes+len(" [cut]") {
		t.Errorf("long message: %d bytes, %.60q...", len(got), got[len(got)-60:])
	}
	// Not a speed target (that is the benchmark's): a bound a quadratic
	// redaction of 3.7 MB would miss by minutes, far from a loaded machine's noise.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Redact of %d bytes took %v: quadratic?", len(msg), d)
	}
}
