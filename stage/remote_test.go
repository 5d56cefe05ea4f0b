package stage_test

// Stages reading and writing s3:// against a real S3-compatible server
// (scripts/s3-server.sh); skipped unless MDLM_TEST_S3_ENDPOINT is set.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/s3test"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/stages/download"
	"github.com/mdlm-go/mdlm/stages/pack"
)

// s3Env points the AWS variables at the test server and MDLM_CACHE at a
// fresh directory; it returns a prefix URL of the test bucket for this test.
func s3Env(t *testing.T) (string, string) {
	cache := t.TempDir()
	t.Setenv("MDLM_CACHE", cache)
	return s3test.Prefix(t, "stage-test"), cache
}

// publish puts a local artifact at url.
func publish(t *testing.T, dir, url string) artifact.Manifest {
	t.Helper()
	s, err := objstore.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u, err := objstore.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Put(context.Background(), dir, u)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logEnv(buf *bytes.Buffer) *stage.Env {
	env := stagetest.Env()
	env.Log = slog.New(slog.NewTextHandler(buf, nil))
	return env
}

func isArtifact(dir string) bool { _, err := artifact.Read(dir, ""); return err == nil }

// pack reads its tokens from s3:// and writes its packed artifact to s3://:
// the result is the artifact a local run makes, the input is streamed (no
// copy of it in the cache), a rerun builds nothing, and another
// run is refused at the same prefix.
func TestS3PackInputAndOutput(t *testing.T) {
	base, cache := s3Env(t)
	ctx := context.Background()
	tokens := stagetest.TokensArtifact(t, "gpt2", "Hello world, this is a document.", "And a second one, somewhat longer than the first.")
	tm := publish(t, tokens, base+"/tokens")

	local := filepath.Join(t.TempDir(), "packed")
	want, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, &pack.Options{In: tokens, Out: local, Length: 8, Sharding: stage.Sharding{NumShards: 1}})
	if err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	opts := &pack.Options{In: base + "/tokens", Out: base + "/packed", Length: 8, Sharding: stage.Sharding{NumShards: 1}}
	m, published, err := stage.Execute(ctx, logEnv(&log), pack.Def, opts)
	if err != nil || !published {
		t.Fatalf("pack s3 -> s3: published %v, %v", published, err)
	}
	if opts.In != base+"/tokens" || opts.Out != base+"/packed" {
		t.Errorf("Execute left the options changed: %q, %q", opts.In, opts.Out)
	}
	if m.Digest() != want.Digest() || m.Inputs["tokens"] != tm.Digest() || m.Run != want.Run {
		t.Errorf("s3 run: digest %s inputs %v run %s; local run: %s, tokens %s, run %s", m.Digest(), m.Inputs, m.Run, want.Digest(), tm.Digest(), want.Run)
	}
	if !strings.Contains(log.String(), "published to the object store") {
		t.Errorf("log does not say the output was published:\n%s", log.String())
	}
	if dir, _ := objstore.CacheDir(cache, m.Digest()); !isArtifact(dir) {
		t.Errorf("the cache lacks the published output %s", m.Digest())
	}
	if dir, _ := objstore.CacheDir(cache, tm.Digest()); isArtifact(dir) {
		t.Errorf("the streamed input %s was copied into the cache", tm.Digest())
	}
	mirror := filepath.Join(cache, "s3", os.Getenv("MDLM_TEST_S3_BUCKET"))
	if got, _ := filepath.Glob(filepath.Join(mirror, "stage-test", "*", "packed")); len(got) != 0 {
		t.Errorf("the local mirror still holds the published copy: %v", got)
	}

	// What a reader fetches is the same artifact, verified.
	s, _ := objstore.Open(ctx)
	pu, _ := objstore.ParseURL(base + "/packed")
	if got, ok, err := s.Exists(ctx, pu); !ok || err != nil || got.Digest() != want.Digest() {
		t.Fatalf("Exists(%s) = %s, %v, %v", pu, got.Digest(), ok, err)
	}

	log.Reset()
	if m2, _, err := stage.Execute(ctx, logEnv(&log), pack.Def, opts); err != nil || m2.Digest() != m.Digest() {
		t.Fatalf("rerun: %s, %v", m2.Digest(), err)
	}
	if !strings.Contains(log.String(), "already published with the same options") || strings.Contains(log.String(), "published to the object store") {
		t.Errorf("the rerun did not skip:\n%s", log.String())
	}

	other := *opts
	other.Length = 16
	if _, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, &other); err == nil || !strings.Contains(err.Error(), "already holds another artifact") {
		t.Fatalf("another run to the same prefix: %v", err)
	}
}

// An upload killed after the build leaves the artifact in the local mirror
// (here: built there by hand, as the killed run did); the rerun publishes it
// without building it again.
func TestS3OutputInterruptedUploadResumes(t *testing.T) {
	base, cache := s3Env(t)
	ctx := context.Background()
	tokens := stagetest.TokensArtifact(t, "gpt2", "One document.", "Two documents.")
	u, _ := objstore.ParseURL(base + "/packed")
	mirror, err := objstore.MirrorDir(cache, u)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(mirror), 0o755)
	built, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, &pack.Options{In: tokens, Out: mirror, Length: 8, Sharding: stage.Sharding{NumShards: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	opts := &pack.Options{In: tokens, Out: base + "/packed", Length: 8, Sharding: stage.Sharding{NumShards: 1}}
	m, published, err := stage.Execute(ctx, logEnv(&log), pack.Def, opts)
	if err != nil || !published || m.Digest() != built.Digest() || m.Created != built.Created {
		t.Fatalf("rerun: %v, %v; %s %v, built %s %v", published, err, m.Digest(), m.Created, built.Digest(), built.Created)
	}
	if !strings.Contains(log.String(), "publishing the local copy an interrupted run built") {
		t.Errorf("the rerun built again:\n%s", log.String())
	}
}

// Wrong credentials and a missing bucket fail with errors naming the bucket,
// never the key, before the stage runs.
func TestS3HostileCredentialsAndBucket(t *testing.T) {
	base, _ := s3Env(t)
	ctx := context.Background()
	tokens := stagetest.TokensArtifact(t, "gpt2", "One document.")
	publish(t, tokens, base+"/tokens")
	bucket := os.Getenv("MDLM_TEST_S3_BUCKET")
	secret := "wrongsecretwrongsecretwrong0123456789"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	for _, o := range []*pack.Options{
		{In: base + "/tokens", Out: filepath.Join(t.TempDir(), "p"), Length: 8},
		{In: tokens, Out: base + "/packed", Length: 8},
	} {
		_, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, o)
		if err == nil || !strings.Contains(err.Error(), bucket) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("wrong credentials, %s -> %s: %v", o.In, o.Out, err)
		} else if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), os.Getenv("MDLM_TEST_S3_ACCESS_KEY")) {
			t.Errorf("error leaks a credential: %v", err)
		}
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", os.Getenv("MDLM_TEST_S3_SECRET_KEY"))
	_, _, err := stage.Execute(ctx, stagetest.Env(), pack.Def, &pack.Options{In: "s3://mdlm-no-such-bucket/tokens", Out: filepath.Join(t.TempDir(), "p"), Length: 8})
	if err == nil || !strings.Contains(err.Error(), `bucket "mdlm-no-such-bucket" does not exist`) {
		t.Errorf("missing bucket: %v", err)
	}
}

// Processes (here goroutines, each with its own locks' file descriptors)
// running the same stage to the same s3:// output all succeed; those that
// published (a shard may leave that to another) return the artifact the
// prefix holds.
func TestS3ConcurrentWriters(t *testing.T) {
	base, _ := s3Env(t)
	tokens := stagetest.TokensArtifact(t, "gpt2", "One document here.", "Two documents there.")
	src := filepath.Join(t.TempDir(), "docs.txt")
	os.WriteFile(src, []byte("one\ntwo\nthree\n"), 0o644)
	t.Run("sharder", func(t *testing.T) {
		concurrentWriters(t, base+"/packed", pack.Def, func() stage.Options {
			return &pack.Options{In: tokens, Out: base + "/packed", Length: 8, Sharding: stage.Sharding{NumShards: 1}}
		})
	})
	t.Run("builder", func(t *testing.T) {
		concurrentWriters(t, base+"/text", download.Def, func() stage.Options {
			return &download.Options{Sources: []string{src}, Out: base + "/text", TextSplit: "line", ShardRows: 10, TextColumn: "text"}
		})
	})
}

func concurrentWriters(t *testing.T, url string, def stage.Def, opts func() stage.Options) {
	var wg sync.WaitGroup
	ms := make([]artifact.Manifest, 3)
	errs := make([]error, 3)
	published := make([]bool, 3)
	logs := make([]bytes.Buffer, 3)
	for i := range ms {
		wg.Go(func() {
			ms[i], published[i], errs[i] = stage.Execute(context.Background(), logEnv(&logs[i]), def, opts())
		})
	}
	wg.Wait()
	s, _ := objstore.Open(context.Background())
	u, _ := objstore.ParseURL(url)
	got, ok, err := s.Exists(context.Background(), u)
	if !ok || err != nil {
		t.Fatalf("Exists: %v, %v", ok, err)
	}
	n := 0
	for i := range ms {
		if errs[i] != nil || published[i] && ms[i].Digest() != got.Digest() {
			t.Errorf("writer %d: published %v %s, %v; the prefix holds %s; its log:\n%s", i, published[i], ms[i].Digest(), errs[i], got.Digest(), logs[i].String())
		}
		if published[i] {
			n++
		}
	}
	if n == 0 {
		t.Error("no writer says it published")
	}
}
