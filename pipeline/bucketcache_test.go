package pipeline

// Tests of the cache and shared cache in a bucket against a real S3-compatible
// server (scripts/s3-server.sh). They skip unless MDLM_TEST_S3_ENDPOINT is set;
// scripts/test.sh sets it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/s3test"
	"github.com/mdlm-go/mdlm/objstore"
)

// s3Env points the AWS variables at the test server and returns a fresh
// s3:// prefix of its bucket, or skips.
func s3Env(t *testing.T) string { return s3test.Prefix(t, "engine") }

// typedEngine runs a stage by publishing an artifact of the stage's output
// type at its -o path; it records each run's stage kind and fails a stage
// whose input directories (the args naming an existing cache entry) do not
// verify here, or whose s3:// inputs (streamed: stream.go) do not download
// and verify, as a stage streaming them would fail.
func typedEngine(t *testing.T, cache string, ran *[]string) *Engine {
	return &Engine{CacheDir: cache, Exec: func(ctx context.Context, args []string) error {
		*ran = append(*ran, args[0])
		out := args[len(args)-1]
		for _, a := range args[1 : len(args)-2] {
			if v, ok := flagValue(a); ok && objstore.IsURL(v) {
				if err := verifyStreamed(ctx, t, v); err != nil {
					return err
				}
				continue
			}
			if filepath.Dir(a) == filepath.Dir(out) {
				if _, err := artifact.Read(a, ""); err != nil {
					return fmt.Errorf("input %s not here: %w", a, err)
				}
			}
		}
		_, err := artifact.Publish(out, artifact.Manifest{Type: reg[args[0]].Output}, func(tmp string) error {
			return os.WriteFile(filepath.Join(tmp, "data.bin"), []byte(strings.Join(args, " ")), 0o644)
		})
		return err
	}}
}

// flagValue is the value of a command-line argument: a positional's, or
// a --flag=value's.
func flagValue(a string) (string, bool) {
	if !strings.HasPrefix(a, "--") {
		return a, true
	}
	_, v, ok := strings.Cut(a, "=")
	return v, ok
}

// verifyStreamed downloads the artifact at url, verified, into a temporary
// directory: what a stage streaming it reads.
func verifyStreamed(ctx context.Context, t *testing.T, url string) error {
	u, err := objstore.ParseURL(url)
	if err != nil {
		return err
	}
	st, err := objstore.Open(ctx)
	if err != nil {
		return err
	}
	_, err = st.Get(ctx, u, filepath.Join(t.TempDir(), "streamed"))
	return err
}

// twoStages is text (download) -> tokens (tokenize), with the tokenizer given.
func twoStages(t *testing.T, dir, tok string) *File {
	t.Helper()
	src := filepath.Join(dir, "c.txt")
	if err := os.WriteFile(src, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadTestPipeline(t, fmt.Sprintf(`version: 1
name: two
stages:
  text:   {run: download, with: {sources: [%s]}}
  tokens: {run: tokenize, inputs: {text: text}, with: {tokenizer: %s}}
`, src, tok))
}

// The cache in a bucket: a first run builds and pushes; a rerun from an empty
// local mirror runs and downloads nothing; a changed downstream stage runs
// alone, streaming its input (tokenize's text is tagged stream:"") without
// a copy in the mirror.
func TestBucketCacheRerunFromEmptyMirror(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	var ran []string
	f := twoStages(t, dir, "bytes")
	if _, err := typedEngine(t, loc, &ran).Run(ctx, f); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 {
		t.Fatalf("first run ran %q, want both stages", ran)
	}

	mirror2 := filepath.Join(dir, "mirror2")
	t.Setenv("MDLM_CACHE", mirror2)
	os.Remove(lockPath(f)) // a fresh machine has no lock file either
	ds, err := typedEngine(t, loc, &ran).Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 {
		t.Fatalf("rerun from an empty mirror ran %q", ran[2:])
	}
	for _, d := range ds {
		if !d.Cached || !strings.Contains(strings.Join(d.Reasons, " "), loc) {
			t.Errorf("%s: cached %v, reasons %q; want settled in %s", d.Stage, d.Cached, d.Reasons, loc)
		}
		if _, err := os.Stat(d.Out); err == nil {
			t.Errorf("%s: downloaded to %s though nothing reads it", d.Stage, d.Out)
		}
	}

	f2 := twoStages(t, dir, "gpt2")
	ds, err = typedEngine(t, loc, &ran).Run(ctx, f2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 3 || ran[2] != "tokenize" {
		t.Fatalf("after changing tokens ran %q, want one tokenize", ran)
	}
	if _, err := os.Stat(ds[0].Out); err == nil {
		t.Errorf("the input %s was fetched into the mirror; tokenize streams it", ds[0].Out)
	}
	b, err := bucketFor(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	if dig, _ := b.Digest(ctx, reg["tokenize"], filepath.Base(ds[1].Out)); dig == "" {
		t.Errorf("the new tokens %s were not pushed", filepath.Base(ds[1].Out))
	}
}

// An output in the mirror but not in the bucket (a push that failed) is
// pushed by the next run, without running anything.
func TestBucketCachePushesMirrorOnly(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	mirror := filepath.Join(dir, "mirror")
	t.Setenv("MDLM_CACHE", mirror)
	var ran []string
	f := twoStages(t, dir, "bytes")
	local := typedEngine(t, filepath.Join(mirror, "s3", strings.TrimPrefix(loc, "s3://")), &ran)
	if _, err := local.Run(ctx, f); err != nil {
		t.Fatal(err)
	}
	ds, err := typedEngine(t, loc, &ran).Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 {
		t.Fatalf("ran %q; the mirror's outputs should have been used", ran)
	}
	b, err := bucketFor(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if dig, _ := b.Digest(ctx, reg[f.Stages[d.Stage].Spec.Kind], filepath.Base(d.Out)); dig == "" {
			t.Errorf("%s was not pushed to %s", d.Stage, loc)
		}
	}
}

// Concurrent publishers of one key all succeed and leave one copy that
// verifies; a shared cache in a bucket gives a second machine the output.
func TestBucketSharedConcurrentPublishers(t *testing.T) {
	loc := s3Env(t)
	ctx := context.Background()
	sp := reg["download"]
	dir := t.TempDir()
	out := filepath.Join(dir, "local", "text-0123456789abcdef")
	testArtifact(t, out, "some text\n")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = (&Engine{Shared: loc}).push(ctx, sp, out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v", i, err)
		}
	}
	want := outputDigest(sp, out)
	other := filepath.Join(dir, "other", filepath.Base(out))
	dig, err := (&Engine{Shared: loc}).pull(ctx, sp, other, true)
	if err != nil || dig != want {
		t.Fatalf("pull: %q, %v; want %q", dig, err, want)
	}
	if outputDigest(sp, other) != want {
		t.Error("the pulled copy does not verify")
	}
}

// A copy damaged in the bucket (an object rewritten behind the store's back)
// is never installed: the pull fails and leaves nothing at the output.
func TestBucketSharedDamagedCopyNotUsed(t *testing.T) {
	loc := s3Env(t)
	data := s3test.DataDir(t)
	ctx := context.Background()
	sp := reg["download"]
	dir := t.TempDir()
	out := filepath.Join(dir, "local", "text-0123456789abcdef")
	testArtifact(t, out, "some text\n")
	e := &Engine{Shared: loc}
	if err := e.push(ctx, sp, out); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimPrefix(loc, "s3://") + "/" + filepath.Base(out) + "/train.txt"
	if err := os.WriteFile(filepath.Join(data, filepath.FromSlash(key)), []byte("SOME TEXT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other", filepath.Base(out))
	if dig, err := e.pull(ctx, sp, other, true); err == nil {
		t.Fatalf("a damaged copy was pulled (%s)", dig)
	}
	if _, err := os.Stat(other); err == nil {
		t.Errorf("a damaged copy was installed at %s", other)
	}

	// A run that finds the damaged copy builds the stage instead.
	var ran []string
	f := textPipeline(t, dir, "")
	e2 := typedEngine(t, filepath.Join(dir, "cache2"), &ran)
	e2.Shared = loc
	plan, err := e2.Plan(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.push(ctx, sp, out); err != nil { // publish under the pipeline's own name
		t.Fatal(err)
	}
	name := filepath.Base(plan[0].Out)
	if err := os.Rename(out, filepath.Join(filepath.Dir(out), name)); err != nil {
		t.Fatal(err)
	}
	if err := e2.push(ctx, sp, filepath.Join(filepath.Dir(out), name)); err != nil {
		t.Fatal(err)
	}
	key = strings.TrimPrefix(loc, "s3://") + "/" + name + "/train.txt"
	if err := os.WriteFile(filepath.Join(data, filepath.FromSlash(key)), []byte("SOME TEXT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := e2.Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 || ds[0].Cached || outputDigest(sp, ds[0].Out) == "" {
		t.Errorf("damaged shared copy: ran %q, decision %+v", ran, ds[0])
	}
}

// Wrong credentials and a missing bucket stop the run at once with an error
// naming the bucket and never a credential.
func TestBucketCacheOpenErrors(t *testing.T) {
	loc := s3Env(t)
	ctx := context.Background()
	bucket := os.Getenv("MDLM_TEST_S3_BUCKET")
	cases := []struct {
		name, loc, secret, want string
	}{
		{"wrong secret", loc, "wrong-secret-0123456789", bucket},
		{"missing bucket", "s3://mdlm-no-such-bucket/x", os.Getenv("MDLM_TEST_S3_SECRET_KEY"), "mdlm-no-such-bucket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", c.secret)
			err := (&Engine{CacheDir: c.loc}).OpenCaches(ctx)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not name %q", msg, c.want)
			}
			for _, secret := range []string{c.secret, os.Getenv("MDLM_TEST_S3_ACCESS_KEY")} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q shows a credential", msg)
				}
			}
		})
	}
	if err := (&Engine{CacheDir: loc, Shared: loc}).OpenCaches(ctx); err == nil {
		t.Error("a cache in a bucket and a shared cache together were accepted")
	}
}

// The local mirror of a cache in a bucket stays under $MDLM_CACHE/s3 whatever
// the URL says; a URL that is not a clean bucket/prefix is refused.
func TestLocalMirror(t *testing.T) {
	root := t.TempDir()
	t.Setenv("MDLM_CACHE", root)
	cases := []struct {
		loc, want string // want "" means an error
	}{
		{"s3://ml-cache/demo", filepath.Join(root, "s3", "ml-cache", "demo")},
		{"s3://ml-cache/a/b/", filepath.Join(root, "s3", "ml-cache", "a", "b")},
		{"s3://ml-cache", filepath.Join(root, "s3", "ml-cache")},
		{"s3://ml-cache/../../etc", ""},
		{"s3://ml-cache/a/./b", ""},
		{"s3://../x", ""},
		{"s3://Bad_Bucket/x", ""},
		{"/not/a/url", ""},
	}
	for _, c := range cases {
		got, err := LocalMirror(c.loc)
		if c.want == "" {
			if err == nil {
				t.Errorf("LocalMirror(%q) = %q, want an error", c.loc, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("LocalMirror(%q) = %q, %v; want %q", c.loc, got, err, c.want)
		}
	}
}
