package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// countStage is a generic Sharder for the protocol tests: item i of --items
// goes to shard i mod N as a file "item-<i>"; Assemble appends a line to the
// file --assembly-log (outside the artifact) each time it runs.
type countStage struct {
	Out         string `short:"o" output:""`
	Items       int    `default:"10"`
	AssemblyLog string `cosmetic:""`
	Sharding
}

var countDef = Def{Kind: "count", Version: 1, Output: "count/v1", New: func() Options { return &countStage{} }}

func (c *countStage) WriteShard(ctx context.Context, env *Env, partial string, index, count int) error {
	for i := index; i < c.Items; i += count {
		p := filepath.Join(partial, fmt.Sprintf("item-%03d", i))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := atomicfile.Write(p, func(w io.Writer) error { _, err := fmt.Fprintf(w, "%d\n", i*i); return err }); err != nil {
			return err
		}
	}
	return nil
}

func (c *countStage) Assemble(ctx context.Context, env *Env, partial, dir string) (artifact.Manifest, error) {
	var names []string
	for i := 0; i < c.Items; i++ {
		names = append(names, fmt.Sprintf("item-%03d", i))
	}
	if err := MoveFiles(partial, dir, names); err != nil {
		return artifact.Manifest{}, err
	}
	f, err := os.OpenFile(c.AssemblyLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return artifact.Manifest{}, err
	}
	fmt.Fprintf(f, "assembled by %d\n", os.Getpid())
	f.Close()
	return artifact.Manifest{Params: map[string]any{"items": c.Items}}, nil
}

var quietEnv = &Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tool: "test"}

// TestMain doubles as the shard process of TestShardsAsProcessesPublishOnce.
func TestMain(m *testing.M) {
	if idx := os.Getenv("STAGE_TEST_SHARD"); idx != "" {
		i, _ := strconv.Atoi(idx)
		c := &countStage{Out: os.Getenv("STAGE_TEST_OUT"), Items: 30, AssemblyLog: os.Getenv("STAGE_TEST_LOG"),
			Sharding: Sharding{ShardIndex: i, NumShards: 3}}
		if _, _, err := Execute(context.Background(), quietEnv, countDef, c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Three shards started at once as separate processes: every item is written
// once, the artifact is assembled and published exactly once, and the partial
// directory is gone.
func TestShardsAsProcessesPublishOnce(t *testing.T) {
	dir := t.TempDir()
	out, log := filepath.Join(dir, "out"), filepath.Join(dir, "assembly.log")
	var cmds []*exec.Cmd
	for i := 0; i < 3; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "STAGE_TEST_SHARD="+strconv.Itoa(i), "STAGE_TEST_OUT="+out, "STAGE_TEST_LOG="+log)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	raw, _ := os.ReadFile(log)
	if n := strings.Count(string(raw), "\n"); n != 1 {
		t.Fatalf("assembled %d times, want once:\n%s", n, raw)
	}
	m, err := artifact.Read(out, "count/v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := artifact.Verify(out, m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 30 || m.Stage != "count" || m.Version != 1 {
		t.Errorf("manifest: %d files, stage %q v%d", len(m.Files), m.Stage, m.Version)
	}
	for i := 0; i < 30; i++ {
		b, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("item-%03d", i)))
		if string(b) != fmt.Sprintf("%d\n", i*i) {
			t.Errorf("item %d = %q", i, b)
		}
	}
	if _, err := os.Stat(out + PartialSuffix); !os.IsNotExist(err) {
		t.Errorf("partial directory left: %v", err)
	}
}

// A shard rerun keeps the files already written; shards of another count do
// not complete the set; a fresh claim is respected, a stale one taken over.
func TestShardProtocolInProcess(t *testing.T) {
	dir := t.TempDir()
	out, log := filepath.Join(dir, "out"), filepath.Join(dir, "log")
	c := &countStage{Out: out, Items: 6, AssemblyLog: log, Sharding: Sharding{ShardIndex: 0, NumShards: 2}}
	if _, published, err := Execute(context.Background(), quietEnv, countDef, c); err != nil || published {
		t.Fatalf("shard 0 of 2: published %v, err %v", published, err)
	}
	// Shard 1 of 3 does not complete shards of 2.
	c3 := *c
	c3.Sharding = Sharding{ShardIndex: 1, NumShards: 3}
	if _, published, err := Execute(context.Background(), quietEnv, countDef, &c3); err != nil || published {
		t.Fatalf("shard 1 of 3: published %v, err %v", published, err)
	}
	// Shards of another count are another run (issue 19, defect 4): shard 1 of
	// 3 discarded the partial of 2, so shard 0 of 2 is written again.
	if _, published, err := Execute(context.Background(), quietEnv, countDef, c); err != nil || published {
		t.Fatalf("shard 0 of 2 again: published %v, err %v", published, err)
	}
	// A fresh claim by another process: this one does its shard and leaves.
	os.Mkdir(filepath.Join(out+PartialSuffix, claimDir), 0o755)
	c.ShardIndex = 1
	if _, published, err := Execute(context.Background(), quietEnv, countDef, c); err != nil || published {
		t.Fatalf("with a fresh claim: published %v, err %v", published, err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("published despite another process's claim")
	}
	// A claim an hour old was left by a dead process: taken over.
	os.Chtimes(filepath.Join(out+PartialSuffix, claimDir), oldTime(), oldTime())
	if _, published, err := Execute(context.Background(), quietEnv, countDef, c); err != nil || !published {
		t.Fatalf("with a stale claim: published %v, err %v", published, err)
	}
	if _, _, err := Execute(context.Background(), quietEnv, countDef, &countStage{Out: out, Sharding: Sharding{ShardIndex: 3, NumShards: 2}}); err == nil {
		t.Error("shard index 3 of 2 accepted")
	}
}

// builder is a Builder whose Build can fail.
type builder struct {
	Out string `short:"o" output:""`
	// Fail is cosmetic so that the failed and the successful run are one run
	// (a work directory of another run is refused: issue 19, defect 7).
	Fail bool `cosmetic:""`
}

func (b *builder) Build(ctx context.Context, env *Env, dirs Dirs) (artifact.Manifest, error) {
	os.MkdirAll(dirs.Work, 0o755)
	os.WriteFile(filepath.Join(dirs.Work, "state"), []byte("resumable"), 0o644)
	os.WriteFile(filepath.Join(dirs.Out, "x"), []byte("x"), 0o644)
	if b.Fail {
		return artifact.Manifest{}, errors.New("boom")
	}
	return artifact.Manifest{Params: map[string]any{"ok": true}}, nil
}

// A failed Build publishes nothing and keeps the work directory (a resumable
// stage continues from it); a successful one publishes and removes it.
func TestExecuteBuilder(t *testing.T) {
	def := Def{Kind: "b", Version: 3, Output: "b/v1", New: func() Options { return &builder{} }}
	out := filepath.Join(t.TempDir(), "out")
	if _, _, err := Execute(context.Background(), quietEnv, def, &builder{Out: out, Fail: true}); err == nil {
		t.Fatal("failure not reported")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a failed build was published")
	}
	if _, err := os.Stat(out + WorkSuffix); err != nil {
		t.Error("the work directory of a failed build is gone")
	}
	m, published, err := Execute(context.Background(), quietEnv, def, &builder{Out: out})
	if err != nil || !published || m.Type != "b/v1" || m.Stage != "b" || m.Version != 3 || m.Tool != "test" {
		t.Fatalf("manifest %+v, published %v, err %v", m, published, err)
	}
	if _, err := os.Stat(out + WorkSuffix); !os.IsNotExist(err) {
		t.Error("work directory left after publication")
	}
}

func TestSpecOf(t *testing.T) {
	sp, err := SpecOf(countDef)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sp.PipelineKeys(), ","); got != "assembly-log,items" || !sp.Shardable {
		t.Errorf("keys %q, shardable %v", got, sp.Shardable)
	}
	if f, _ := sp.Flag("assembly-log"); !f.Cosmetic {
		t.Error("assembly-log not cosmetic")
	}
	bad := []struct {
		def  Def
		want string
	}{
		{Def{Kind: "x", New: func() Options { return &struct{ builder }{} }}, ""},
		{Def{Kind: "x", Inputs: []Input{{Name: "data", Type: "packed/v1"}}, New: func() Options { return &builder{} }}, `input "data" has no flag`},
		{Def{Kind: "x", New: func() Options { return &noOut{} }}, "0 flags tagged output"},
		{Def{Kind: "x", New: func() Options { return &badDigest{} }}, `digest:"sha"`},
		{Def{Kind: "x", New: func() Options { return &notAStage{} }}, "neither stage.Builder nor stage.Sharder"},
	}
	for i, c := range bad {
		_, err := SpecOf(c.def)
		if c.want == "" {
			if err != nil {
				t.Errorf("case %d: %v", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: err = %v, want %q", i, err, c.want)
		}
	}
}

// nopBuild makes a test Options a Builder.
type nopBuild struct{}

func (nopBuild) Build(context.Context, *Env, Dirs) (artifact.Manifest, error) {
	return artifact.Manifest{}, nil
}

type noOut struct {
	X int
	nopBuild
}

type notAStage struct {
	Out string `output:""`
}

type badDigest struct {
	Out string `output:""`
	F   string `digest:"sha"`
	nopBuild
}

func oldTime() time.Time { return time.Now().Add(-time.Hour) }

func TestIsReference(t *testing.T) {
	for v, want := range map[string]bool{"hub:org/name": true, "hub:org/name@abc": true, "scorers/gpt2": false,
		"C:/models/x": false, "my:dir": true, "/abs/path": false, "x:y": false} {
		if got := IsReference(v); got != want {
			t.Errorf("IsReference(%q) = %v, want %v", v, got, want)
		}
	}
}

// gcProbe is a Builder that records the GC percent it runs under and, when
// Cancel is set, fails as a stage whose context was cancelled.
type gcProbe struct {
	Out    string `output:""`
	Cancel bool   `cosmetic:""`
	gc     int
}

func (p *gcProbe) Build(ctx context.Context, env *Env, dirs Dirs) (artifact.Manifest, error) {
	p.gc = debug.SetGCPercent(100)
	debug.SetGCPercent(p.gc)
	if p.Cancel {
		return artifact.Manifest{}, fmt.Errorf("step 3: %w", context.Canceled)
	}
	os.WriteFile(filepath.Join(dirs.Out, "x"), []byte("x"), 0o644)
	return artifact.Manifest{}, nil
}

// The Def's fields replace per-stage wrappers: DataGC raises the GC percent
// while the stage runs (and restores it); Resumable turns an interruption
// into the message that rerunning continues from <out>.work.
func TestDefFields(t *testing.T) {
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	for _, c := range []struct {
		name         string
		def          Def
		cancel       bool
		wantGC       int
		wantErr      string
		wantNoResume bool
	}{
		{name: "data", def: Def{DataGC: true}, wantGC: 400},
		{name: "plain", def: Def{}, wantGC: 100},
		{name: "resumable", def: Def{Resumable: true}, cancel: true, wantGC: 100, wantErr: "interrupted; progress is kept in"},
		{name: "not resumable", def: Def{}, cancel: true, wantGC: 100, wantErr: "context canceled", wantNoResume: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.def.Kind, c.def.Version, c.def.Output = "p", 1, "p/v1"
			c.def.New = func() Options { return &gcProbe{} }
			p := &gcProbe{Out: filepath.Join(t.TempDir(), "out"), Cancel: c.cancel}
			_, _, err := Execute(context.Background(), quietEnv, c.def, p)
			if p.gc != c.wantGC {
				t.Errorf("GC percent during Build %d, want %d", p.gc, c.wantGC)
			}
			if got := debug.SetGCPercent(100); got != 100 {
				t.Errorf("GC percent after Execute %d, want it restored to 100", got)
			}
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatal(err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			case c.wantNoResume && strings.Contains(err.Error(), "rerun"):
				t.Errorf("a stage that keeps no progress promises a resume: %v", err)
			}
		})
	}
}

// OutDir reads the flag tagged output:"" and refuses an empty one.
func TestOutDir(t *testing.T) {
	if out, err := OutDir(Def{Kind: "b"}, &builder{Out: "x"}); err != nil || out != "x" {
		t.Errorf("OutDir = %q, %v", out, err)
	}
	if _, err := OutDir(Def{Kind: "b"}, &builder{}); err == nil || !strings.Contains(err.Error(), "-o") {
		t.Errorf("empty output not refused: %v", err)
	}
	if _, err := OutDir(Def{Kind: "b"}, &noOut{}); err == nil {
		t.Error("options without an output flag not refused")
	}
}
