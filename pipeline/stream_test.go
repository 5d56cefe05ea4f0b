package pipeline

// Streamed inputs with the cache in a bucket (stream.go), with the real
// download, tokenize and pack stages run in process against the test server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/internal/s3test"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
)

// stageEngine runs each command line with the stage's own kong grammar and
// stage.Execute, as `mdlm` does in process; an s3:// value of a directory
// flag is kept as written (cmd/mdlm/urlpath.go). It records every command
// line.
func stageEngine(cache string, ran *[][]string) *Engine {
	return &Engine{CacheDir: cache, Exec: func(ctx context.Context, args []string) error {
		*ran = append(*ran, slices.Clone(args))
		def := reg[args[0]].Def
		opts := def.New()
		k, err := kong.New(opts, kong.Name(def.Kind), kong.Exit(func(int) { panic("kong exit") }),
			kong.NamedMapper("existingdir", urlOrString{}))
		if err != nil {
			return err
		}
		if _, err := k.Parse(args[1:]); err != nil {
			return fmt.Errorf("%v: %w", args, err)
		}
		_, _, err = stage.Execute(ctx, stagetest.Env(), def, opts)
		return err
	}}
}

// urlOrString decodes a directory flag as written (the test's paths are
// absolute already).
type urlOrString struct{}

func (urlOrString) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	var s string
	if err := ctx.Scan.PopValueInto("dir", &s); err != nil {
		return err
	}
	target.SetString(s)
	return nil
}

// streamPipeline is text (download, 4 shards) -> tokens (tokenize) ->
// blocks (pack of blocks of length).
func streamPipeline(t *testing.T, dir string, length int) *File {
	t.Helper()
	src := filepath.Join(dir, "corpus.txt")
	if _, err := os.Stat(src); err != nil {
		var b strings.Builder
		for i := range 170 {
			fmt.Fprintf(&b, "Line %d of the corpus says %s hello.\n", i, strings.Repeat("again and ", i%9))
		}
		if err := os.WriteFile(src, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return loadTestPipeline(t, fmt.Sprintf(`version: 1
name: streamed
stages:
  text:   {run: download, with: {sources: [%s], shard-rows: 40, hold-out: 10}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: gpt2}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: %d}}
`, src, length))
}

// kinds are the stage kinds of command lines.
func kinds(ran [][]string) []string {
	var out []string
	for _, a := range ran {
		out = append(out, a[0])
	}
	return out
}

// sameArtifact fails unless the artifacts a and b hold the same bytes and
// the same manifest but for its creation time.
func sameArtifact(t *testing.T, a, b string) {
	t.Helper()
	ma, errA := artifact.Read(a, "")
	mb, errB := artifact.Read(b, "")
	if errA != nil || errB != nil {
		t.Fatalf("%v, %v", errA, errB)
	}
	ma.Created, mb.Created = time.Time{}, time.Time{}
	ja, _ := json.Marshal(ma)
	jb, _ := json.Marshal(mb)
	if !bytes.Equal(ja, jb) {
		t.Errorf("manifests of %s and %s differ:\n%s\n%s", a, b, ja, jb)
	}
	for _, name := range paths(ma) {
		x, errA := os.ReadFile(filepath.Join(a, name))
		y, errB := os.ReadFile(filepath.Join(b, name))
		if errA != nil || errB != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: %s and %s differ (%v, %v)", name, a, b, errA, errB)
		}
	}
}

func paths(m artifact.Manifest) []string {
	var out []string
	for _, f := range m.Files {
		out = append(out, f.Path)
	}
	return out
}

// localReference runs the pipeline with a local cache and returns its
// decisions: what a run streaming from the bucket must reproduce.
func localReference(t *testing.T, f *File) []Decision {
	t.Helper()
	var ran [][]string
	ds, err := stageEngine(filepath.Join(t.TempDir(), "local"), &ran).Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// bucketThenFreshMirror runs the pipeline of pack length 16 with its cache
// in a fresh bucket prefix, then points $MDLM_CACHE at an empty mirror and
// drops the lock file, as a fresh machine. It returns the prefix, the first
// run's decisions and the new mirror.
func bucketThenFreshMirror(t *testing.T, dir string) (string, []Decision, string) {
	t.Helper()
	loc := s3Env(t)
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	var ran [][]string
	f := streamPipeline(t, dir, 16)
	ds, err := stageEngine(loc, &ran).Run(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kinds(ran), []string{"download", "tokenize", "pack"}) {
		t.Fatalf("first run ran %q", kinds(ran))
	}
	mirror := filepath.Join(dir, "mirror2")
	t.Setenv("MDLM_CACHE", mirror)
	os.Remove(lockPath(f))
	return loc, ds, mirror
}

// The cache in a bucket, a fresh machine, pack's length changed: pack runs
// alone and streams the tokens from the bucket (its command line names their
// s3:// address), nothing of the tokens comes down into the mirror or the
// object store's cache, and the output, its key and its bytes are those of a
// run on local inputs.
func TestBucketCacheStreamsInput(t *testing.T) {
	dir := t.TempDir()
	loc, first, mirror := bucketThenFreshMirror(t, dir)
	var ran [][]string
	before := stage.StreamedBytes()
	ds, err := stageEngine(loc, &ran).Run(context.Background(), streamPipeline(t, dir, 32))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kinds(ran), []string{"pack"}) {
		t.Fatalf("ran %q, want pack alone", kinds(ran))
	}
	tokensURL := loc + "/" + filepath.Base(first[1].Out)
	if !slices.Contains(ran[0], tokensURL) {
		t.Errorf("pack ran %q, want its input named %s", ran[0], tokensURL)
	}
	if stage.StreamedBytes() == before {
		t.Error("pack streamed nothing")
	}
	for _, d := range ds[:2] {
		if _, err := os.Stat(d.Out); err == nil {
			t.Errorf("%s was copied into the mirror (%s)", d.Stage, d.Out)
		}
	}
	if got, _ := filepath.Glob(filepath.Join(mirror, "artifacts", "*")); len(got) != 0 {
		t.Errorf("the object store's cache holds %q; the tokens should stream", got)
	}
	ref := localReference(t, streamPipeline(t, dir, 32))
	for i, d := range ds {
		if filepath.Base(d.Out) != filepath.Base(ref[i].Out) || d.Key != ref[i].Key {
			t.Errorf("%s: key %s (%s) from the bucket, %s (%s) locally", d.Stage, d.Key, d.Out, ref[i].Key, ref[i].Out)
		}
	}
	sameArtifact(t, ref[2].Out, ds[2].Out)
}

// rotInBucket overwrites the object of the first file of the output out
// matching glob in the bucket cache loc with other bytes of the same size,
// behind the store's back, and returns the file's name.
func rotInBucket(t *testing.T, loc, out, glob string) string {
	t.Helper()
	data := s3test.DataDir(t)
	m, err := artifact.Read(out, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if ok, _ := filepath.Match(glob, f.Path); ok {
			junk := make([]byte, f.Size)
			rand.Read(junk)
			p := filepath.Join(data, filepath.FromSlash(strings.TrimPrefix(loc, "s3://")), filepath.Base(out), f.Path)
			if err := os.WriteFile(p, junk, 0o644); err != nil {
				t.Fatal(err)
			}
			return f.Path
		}
	}
	t.Fatalf("%s has no file %s", out, glob)
	return ""
}

// A streamed input whose Parquet object rotted: pack fails on it, the engine
// fetches the tokens, verified, finds the damage, rebuilds them (their push
// repairs the bucket) and runs pack again on the local copy; the output is
// the one local inputs give. The first run's mirror is kept aside so that
// the rotten file's original bytes are known.
func TestBucketCacheStreamedInputDamaged(t *testing.T) {
	dir := t.TempDir()
	loc, first, _ := bucketThenFreshMirror(t, dir)
	tokens := first[1].Out
	file := rotInBucket(t, loc, tokens, "train-*.parquet")
	if err := verifiesInBucket(t, loc, tokens); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("Get of the rotten copy: %v; want an error naming %s", err, file)
	}
	var ran [][]string
	ds, err := stageEngine(loc, &ran).Run(context.Background(), streamPipeline(t, dir, 32))
	if err != nil {
		t.Fatalf("a rotten streamed input failed the run: %v", err)
	}
	if !slices.Equal(kinds(ran), []string{"pack", "tokenize", "pack"}) {
		t.Fatalf("ran %q, want pack failing on the stream, tokens rebuilt, pack again", kinds(ran))
	}
	if slices.ContainsFunc(ran[2], objstore.IsURL) {
		t.Errorf("the second pack %q streamed again; want the local copy", ran[2])
	}
	if err := verifiesInBucket(t, loc, tokens); err != nil {
		t.Errorf("the bucket's tokens were not repaired: %v", err)
	}
	sameArtifact(t, tokens, ds[1].Out)
	ref := localReference(t, streamPipeline(t, dir, 32))
	sameArtifact(t, ref[2].Out, ds[2].Out)
}

// failWhen makes e's stages fail with fail's error where it gives one,
// recording the failed command line in ran; other command lines run.
func failWhen(e *Engine, ran *[][]string, fail func(args []string) error) {
	exec := e.Exec
	e.Exec = func(ctx context.Context, args []string) error {
		if err := fail(args); err != nil {
			*ran = append(*ran, slices.Clone(args))
			return err
		}
		return exec(ctx, args)
	}
}

// A stage that streamed an input and fails for its own reasons (the input
// verifies) reports its own error, once; the input is checked, not rebuilt.
func TestBucketCacheStreamedStageOwnError(t *testing.T) {
	dir := t.TempDir()
	loc, first, _ := bucketThenFreshMirror(t, dir)
	var ran [][]string
	e := stageEngine(loc, &ran)
	failWhen(e, &ran, func(args []string) error {
		if args[0] == "pack" {
			return fmt.Errorf("pack: out of disk")
		}
		return nil
	})
	ds, err := e.Run(context.Background(), streamPipeline(t, dir, 32))
	if err == nil || !strings.HasSuffix(err.Error(), "pack: out of disk") {
		t.Fatalf("err = %v, want the stage's own error", err)
	}
	if !slices.Equal(kinds(ran), []string{"pack"}) {
		t.Errorf("ran %q, want pack once", kinds(ran))
	}
	if len(ds) != 2 || filepath.Base(ds[1].Out) != filepath.Base(first[1].Out) || outputDigest(reg["tokenize"], ds[1].Out) == "" {
		t.Errorf("the streamed tokens %s were not checked (fetched, verified) after pack failed (decisions %v)", first[1].Out, ds)
	}
}

// A stage whose error names an object of its streamed input, which verifies
// when the engine checks it (another process repaired it meanwhile, or the
// read failed mid-way), runs once more on the local copy.
func TestBucketCacheStreamedReadFailedRetried(t *testing.T) {
	dir := t.TempDir()
	loc, first, _ := bucketThenFreshMirror(t, dir)
	var ran [][]string
	e := stageEngine(loc, &ran)
	failWhen(e, &ran, func(args []string) error {
		if i := slices.IndexFunc(args, objstore.IsURL); args[0] == "pack" && i > 0 {
			return fmt.Errorf("pack train: object store: %s/train-00000.parquet: connection reset", args[i])
		}
		return nil
	})
	ds, err := e.Run(context.Background(), streamPipeline(t, dir, 32))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kinds(ran), []string{"pack", "pack"}) || !slices.Contains(ran[1], ds[1].Out) {
		t.Fatalf("ran %q, want pack streaming, then pack on %s", ran, ds[1].Out)
	}
	if filepath.Base(ds[1].Out) != filepath.Base(first[1].Out) {
		t.Errorf("tokens %s, first %s", ds[1].Out, first[1].Out)
	}
	sameArtifact(t, localReference(t, streamPipeline(t, dir, 32))[2].Out, ds[2].Out)
}

// An input whose flag is not tagged stream:"" (train's packed blocks, which
// it memory-maps) is fetched into the mirror, verified, and named there; the
// tokens, which only pack reads, stay in the bucket.
func TestBucketCacheNonStreamInputFetched(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	pipe := func(steps int) *File {
		return loadTestPipeline(t, fmt.Sprintf(`version: 1
name: train
stages:
  text:   {run: download, with: {sources: [%s]}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: bytes}}
  blocks: {run: pack, inputs: {tokens: tokens}, with: {length: 8}}
  model:  {run: train, inputs: {data: blocks}, with: {steps: %d}}
`, filepath.Join(dir, "c.txt"), steps))
	}
	if err := os.WriteFile(filepath.Join(dir, "c.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ran []string
	if _, err := typedEngine(t, loc, &ran).Run(ctx, pipe(1)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror2"))
	ran = nil
	var lines [][]string
	e := typedEngine(t, loc, &ran)
	exec := e.Exec
	e.Exec = func(ctx context.Context, args []string) error {
		lines = append(lines, slices.Clone(args))
		return exec(ctx, args)
	}
	ds, err := e.Run(ctx, pipe(2))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []string{"train"}) {
		t.Fatalf("ran %q, want train alone", ran)
	}
	if !slices.Contains(lines[0], "--data="+ds[2].Out) || slices.ContainsFunc(lines[0], func(a string) bool { return strings.Contains(a, "s3://") }) {
		t.Errorf("train ran %q, want its data in the mirror, %s", lines[0], ds[2].Out)
	}
	if outputDigest(reg["pack"], ds[2].Out) == "" {
		t.Errorf("the blocks %s were not fetched into the mirror", ds[2].Out)
	}
	for _, d := range ds[:2] {
		if _, err := os.Stat(d.Out); err == nil {
			t.Errorf("%s was copied into the mirror (%s); nothing here reads it", d.Stage, d.Out)
		}
	}
}

// The array tasks of a stage with shards, run from an empty mirror, stream
// their input (no fetch makes the mirror's directory for them) and the last
// one publishes what a local run builds.
func TestBucketCacheShardsStream(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	pipe := func(tok string) *File {
		streamPipeline(t, dir, 16) // writes the corpus
		return loadTestPipeline(t, fmt.Sprintf(`version: 1
name: sharded
stages:
  text:   {run: download, with: {sources: [%s], shard-rows: 40}}
  tokens: {run: tokenize, inputs: {text: text}, shards: 2, with: {tokenizer: %s}}
`, filepath.Join(dir, "corpus.txt"), tok))
	}
	var ran [][]string
	if _, err := stageEngine(loc, &ran).Run(ctx, pipe("gpt2")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror2"))
	f := pipe("bytes")
	ran = nil
	var ds []Decision
	for i := range 2 {
		e := stageEngine(loc, &ran)
		e.Only, e.ShardIndex, e.NumShards = "tokens", i, 2
		var err error
		if ds, err = e.Run(ctx, f); err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	for _, args := range ran {
		if !slices.ContainsFunc(args, objstore.IsURL) {
			t.Errorf("a shard ran %q, want its text streamed", args)
		}
	}
	if _, err := os.Stat(ds[0].Out); err == nil {
		t.Errorf("the text was copied into the mirror (%s)", ds[0].Out)
	}
	ref := localReference(t, f)
	sameArtifact(t, ref[1].Out, ds[1].Out)
	if err := verifiesInBucket(t, loc, ds[1].Out); err != nil {
		t.Errorf("the last shard did not push the tokens: %v", err)
	}
}
