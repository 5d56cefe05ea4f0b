package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// mulStage is a Sharder whose files depend on an option and on its input: item
// i is "<i*Mul> <input's x.txt>".
type mulStage struct {
	In  string `arg:"" input:"in"`
	Out string `short:"o" output:""`
	Mul int    `default:"1"`
	Sharding
}

var mulDef = Def{Kind: "mul", Version: 1, Output: "mul/v1", Inputs: []Input{{Name: "in", Type: "test/v1"}},
	New: func() Options { return &mulStage{} }}

const mulItems = 6

func (c *mulStage) WriteShard(ctx context.Context, env *Env, partial string, index, count int) error {
	in, err := os.ReadFile(filepath.Join(c.In, "x.txt"))
	if err != nil {
		return err
	}
	for i := index; i < mulItems; i += count {
		p := filepath.Join(partial, fmt.Sprintf("item-%d", i))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := atomicfile.Write(p, func(w io.Writer) error { _, err := fmt.Fprintf(w, "%d %s", i*c.Mul, in); return err }); err != nil {
			return err
		}
	}
	return nil
}

func (c *mulStage) Assemble(ctx context.Context, env *Env, partial, dir string) (artifact.Manifest, error) {
	var names []string
	for i := 0; i < mulItems; i++ {
		names = append(names, fmt.Sprintf("item-%d", i))
	}
	return artifact.Manifest{}, MoveFiles(partial, dir, names)
}

func inputArtifact(t *testing.T, dir, content string) {
	t.Helper()
	if _, err := artifact.Publish(dir, artifact.Manifest{Type: "test/v1"}, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "x.txt"), []byte(content), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
}

func items(t *testing.T, out string) string {
	t.Helper()
	m, err := artifact.Read(out, "mul/v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := artifact.Verify(out, m); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := 0; i < mulItems; i++ {
		c, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("item-%d", i)))
		fmt.Fprintf(&b, "%s;", c)
	}
	return b.String()
}

func shard(t *testing.T, c mulStage, index, count int) bool {
	t.Helper()
	c.Sharding = Sharding{ShardIndex: index, NumShards: count}
	_, published, err := Execute(context.Background(), quietEnv, mulDef, &c)
	if err != nil {
		t.Fatalf("shard %d of %d: %v", index, count, err)
	}
	return published
}

// Issue 19, defect 4: a partial of another run (other options, another input,
// another shard count) is discarded, never merged.
func TestHostileShardsOfAnotherRun(t *testing.T) {
	root := t.TempDir()
	in, out := filepath.Join(root, "in"), filepath.Join(root, "out")
	inputArtifact(t, in, "A")

	// Shard 0 with --mul 1, then shards 0 and 1 with --mul 2.
	shard(t, mulStage{In: in, Out: out, Mul: 1}, 0, 2)
	if shard(t, mulStage{In: in, Out: out, Mul: 2}, 1, 2) {
		t.Fatal("shard 1 of --mul 2 published over shard 0 of --mul 1")
	}
	if !shard(t, mulStage{In: in, Out: out, Mul: 2}, 0, 2) {
		t.Fatal("shards 0 and 1 of one run did not publish")
	}
	if got, want := items(t, out), "0 A;2 A;4 A;6 A;8 A;10 A;"; got != want {
		t.Fatalf("published %q, want %q", got, want)
	}

	// Input A's shard 0, then input B (same path) shard 1: no mixture.
	out2 := filepath.Join(root, "out2")
	shard(t, mulStage{In: in, Out: out2, Mul: 1}, 0, 2)
	inputArtifact(t, in, "B")
	if shard(t, mulStage{In: in, Out: out2, Mul: 1}, 1, 2) {
		t.Fatal("input B's shard 1 published with input A's shard 0")
	}
	shard(t, mulStage{In: in, Out: out2, Mul: 1}, 0, 2)
	if got, want := items(t, out2), "0 B;1 B;2 B;3 B;4 B;5 B;"; got != want {
		t.Fatalf("published %q, want %q", got, want)
	}
	m, _ := artifact.Read(out2, "")
	if !strings.HasPrefix(m.Run, "sha256:") {
		t.Errorf("manifest run %q", m.Run)
	}
}

// Issue 19, defect 1: an existing <out>.work or <out>.partial that Execute did
// not make (no marker), or one of another stage kind, is refused and kept.
func TestHostileUnmarkedWorkAndPartial(t *testing.T) {
	def := Def{Kind: "b", Version: 3, Output: "b/v1", New: func() Options { return &builder{} }}
	root := t.TempDir()
	in := filepath.Join(root, "in")
	inputArtifact(t, in, "A")
	for _, c := range []struct {
		suffix string
		opts   func(out string) Options
	}{
		{WorkSuffix, func(out string) Options { return &builder{Out: out} }},
		{PartialSuffix, func(out string) Options { return &mulStage{In: in, Out: out, Mul: 1} }},
	} {
		out := filepath.Join(root, "v2"+c.suffix[1:])
		os.Mkdir(out+c.suffix, 0o755)
		notes := filepath.Join(out+c.suffix, "notes")
		os.WriteFile(notes, []byte("x"), 0o644)
		d := def
		if c.suffix == PartialSuffix {
			d = mulDef
		}
		_, _, err := Execute(context.Background(), quietEnv, d, c.opts(out))
		if err == nil || !strings.Contains(err.Error(), out+c.suffix) {
			t.Errorf("%s: err = %v, want a refusal naming it", c.suffix, err)
		}
		if b, _ := os.ReadFile(notes); string(b) != "x" {
			t.Errorf("%s: the user's notes are gone", c.suffix)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: published anyway", c.suffix)
		}
	}
	// A work directory of another stage kind is refused too.
	out := filepath.Join(root, "k")
	if err := createOwned(out+WorkSuffix, owner{Kind: "train", Run: "sha256:00"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Execute(context.Background(), quietEnv, def, &builder{Out: out}); err == nil || !strings.Contains(err.Error(), "train") {
		t.Errorf("work of another kind: err = %v", err)
	}
}

// Issue 19, defect 1: Execute refuses an input, a parent of one, or a path
// inside one as its output, before building anything.
func TestHostileOutputIsInput(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "data", "in")
	inputArtifact(t, in, "A")
	for _, out := range []string{in, filepath.Dir(in), filepath.Join(in, "sub")} {
		c := &mulStage{In: in, Out: out, Mul: 1}
		if _, _, err := Execute(context.Background(), quietEnv, mulDef, c); err == nil {
			t.Errorf("-o %s accepted with input %s", out, in)
		}
	}
	if _, err := artifact.Read(in, "test/v1"); err != nil {
		t.Fatalf("input damaged: %v", err)
	}
}

// slowBuilder counts its builds in a file outside the artifact.
type slowBuilder struct {
	Out   string `short:"o" output:""`
	Count string `cosmetic:""`
	Value string
}

func (b *slowBuilder) Build(ctx context.Context, env *Env, dirs Dirs) (artifact.Manifest, error) {
	f, err := os.OpenFile(b.Count, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return artifact.Manifest{}, err
	}
	fmt.Fprintln(f, "build")
	f.Close()
	if entries, _ := os.ReadDir(dirs.Work); len(entries) != 1 { // only the marker: no one else's files
		return artifact.Manifest{}, fmt.Errorf("work directory %s shared: %d entries", dirs.Work, len(entries))
	}
	os.WriteFile(filepath.Join(dirs.Work, "ckpt"), []byte("x"), 0o644)
	time.Sleep(300 * time.Millisecond)
	return artifact.Manifest{}, os.WriteFile(filepath.Join(dirs.Out, "v"), []byte(b.Value), 0o644)
}

var slowDef = Def{Kind: "slow", Version: 1, Output: "slow/v1", New: func() Options { return &slowBuilder{} }}

// Issue 19, defect 7: two processes on one output: the second waits, finds the
// artifact of the same run published and skips; nothing fails, the work
// directory is never shared, and a run with other options rebuilds.
func TestHostileConcurrentBuilders(t *testing.T) {
	root := t.TempDir()
	out, count := filepath.Join(root, "out"), filepath.Join(root, "count")
	var wg sync.WaitGroup
	digests := make([]string, 3)
	errs := make([]error, 3)
	for i := range digests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, published, err := Execute(context.Background(), quietEnv, slowDef, &slowBuilder{Out: out, Count: count, Value: "a"})
			if err == nil && !published {
				err = fmt.Errorf("not published")
			}
			digests[i], errs[i] = m.Digest(), err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		if digests[i] != digests[0] {
			t.Errorf("process %d: digest %s != %s", i, digests[i], digests[0])
		}
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "build") != 1 {
		t.Fatalf("built %d times, want once", strings.Count(string(b), "build"))
	}
	if _, err := os.Stat(out + WorkSuffix); !os.IsNotExist(err) {
		t.Error("work directory left behind")
	}
	// Other options: rebuilt and replaced.
	if _, _, err := Execute(context.Background(), quietEnv, slowDef, &slowBuilder{Out: out, Count: count, Value: "b"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "v")); string(b) != "b" {
		t.Errorf("v = %q after a run with other options", b)
	}
}

// Issue 19, defect 16a: the temporaries a killed run left for this output
// are removed by the next run; names that only look alike are kept.
func TestHostileStaleTemporaries(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	stale := []string{".out.tmp-123", ".out.work.tmp-9", ".out.partial.tmp-77"}
	keep := []string{".out.tmp-12a", ".other.tmp-1", "out.tmp-5", ".out.tmp-"}
	for i, n := range append(append([]string{}, stale...), keep...) {
		if i%2 == 0 {
			os.Mkdir(filepath.Join(root, n), 0o755)
		} else {
			os.WriteFile(filepath.Join(root, n), nil, 0o644)
		}
	}
	if _, _, err := Execute(context.Background(), quietEnv, slowDef, &slowBuilder{Out: out, Count: filepath.Join(t.TempDir(), "c")}); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if _, err := os.Lstat(filepath.Join(root, n)); !os.IsNotExist(err) {
			t.Errorf("stale %s kept", n)
		}
	}
	for _, n := range keep {
		if _, err := os.Lstat(filepath.Join(root, n)); err != nil {
			t.Errorf("unrelated %s removed", n)
		}
	}
}

// PrepareScratch makes the directory Execute then accepts as its own.
func TestPrepareScratch(t *testing.T) {
	def := Def{Kind: "b", Version: 3, Output: "b/v1", New: func() Options { return &builder{} }}
	out := filepath.Join(t.TempDir(), "out")
	work, err := PrepareScratch(def, &builder{Out: out})
	if err != nil || work != out+WorkSuffix {
		t.Fatalf("PrepareScratch = %q, %v", work, err)
	}
	os.WriteFile(filepath.Join(work, "ckpt"), []byte("x"), 0o644)
	if _, _, err := Execute(context.Background(), quietEnv, def, &builder{Out: out}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	in := filepath.Join(root, "in")
	inputArtifact(t, in, "A")
	c := &mulStage{In: in, Out: filepath.Join(root, "m"), Mul: 1, Sharding: Sharding{NumShards: 1}}
	partial, err := PrepareScratch(mulDef, c)
	if err != nil || partial != c.Out+PartialSuffix {
		t.Fatalf("PrepareScratch = %q, %v", partial, err)
	}
	if _, published, err := Execute(context.Background(), quietEnv, mulDef, c); err != nil || !published {
		t.Fatalf("published %v, err %v", published, err)
	}
}

// refusing is a Builder that fails before writing anything, as a stage does
// when a flag value is refused.
type refusing struct {
	Out  string `short:"o" output:""`
	Mode string
}

func (r *refusing) Build(ctx context.Context, env *Env, dirs Dirs) (artifact.Manifest, error) {
	if r.Mode != "good" {
		return artifact.Manifest{}, errors.New("bad --mode")
	}
	os.WriteFile(filepath.Join(dirs.Out, "x"), []byte("x"), 0o644)
	return artifact.Manifest{}, nil
}

// A build refused before it wrote anything leaves no work directory behind, so
// the corrected rerun, with other options, is not refused as another run's.
func TestHostileRefusedBuildDoesNotPinWork(t *testing.T) {
	def := Def{Kind: "r", Version: 1, Output: "r/v1", New: func() Options { return &refusing{} }}
	out := filepath.Join(t.TempDir(), "out")
	if _, _, err := Execute(context.Background(), quietEnv, def, &refusing{Out: out, Mode: "../bad"}); err == nil {
		t.Fatal("the refusal was not reported")
	}
	if _, err := os.Stat(out + WorkSuffix); !os.IsNotExist(err) {
		t.Fatalf("a work directory holding only its marker was left: %v", err)
	}
	if _, _, err := Execute(context.Background(), quietEnv, def, &refusing{Out: out, Mode: "good"}); err != nil {
		t.Fatalf("the corrected rerun: %v", err)
	}
}
