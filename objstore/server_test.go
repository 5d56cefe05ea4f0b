package objstore

// Tests against a real S3-compatible server (scripts/s3-server.sh: Versity's
// S3 gateway on loopback). They skip unless MDLM_TEST_S3_ENDPOINT is set.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// testServer returns the server's Config and bucket, or skips.
func testServer(t *testing.T) (Config, string) {
	t.Helper()
	ep := os.Getenv("MDLM_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("MDLM_TEST_S3_ENDPOINT is unset: start a server with eval \"$(scripts/s3-server.sh start)\" to run the object store tests")
	}
	return Config{Endpoint: ep, PathStyle: true, Region: "us-east-1",
		AccessKey: os.Getenv("MDLM_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("MDLM_TEST_S3_SECRET_KEY")}, os.Getenv("MDLM_TEST_S3_BUCKET")
}

// testStore connects with small parts so multipart paths run on small files.
func testStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.PartSize = 5 << 20 // S3's smallest part
	s.Workers = 4
	return s
}

// testPrefix is a fresh prefix of the test bucket.
func testPrefix(t *testing.T, bucket string) URL {
	b := make([]byte, 6)
	rand.Read(b)
	return URL{Bucket: bucket, Prefix: fmt.Sprintf("test/%s-%x", strings.ReplaceAll(t.Name(), "/", "_"), b)}
}

// testArtifact publishes a local artifact with a multipart-sized file, a
// small one in a subdirectory and an empty one.
func testArtifact(t *testing.T, big int) (string, artifact.Manifest) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "art")
	data := make([]byte, big)
	rand.Read(data)
	m, err := artifact.Publish(dir, artifact.Manifest{Type: "test/v1"}, func(tmp string) error {
		if err := os.MkdirAll(filepath.Join(tmp, "sub"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "big.bin"), data, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "sub", "small.txt"), []byte("hello"), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "empty"), nil, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func sameTree(t *testing.T, a, b string, m artifact.Manifest) {
	t.Helper()
	for _, f := range append(m.Files, artifact.File{Path: artifact.ManifestName}) {
		x, err1 := os.ReadFile(filepath.Join(a, filepath.FromSlash(f.Path)))
		y, err2 := os.ReadFile(filepath.Join(b, filepath.FromSlash(f.Path)))
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs after the round trip (%v, %v)", f.Path, err1, err2)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, m := testArtifact(t, 12<<20+123)
	u := testPrefix(t, bucket)
	if _, ok, err := s.Exists(ctx, u); ok || err != nil {
		t.Fatalf("Exists before Put = %v, %v", ok, err)
	}
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Exists(ctx, u); !ok || err != nil || got.Digest() != m.Digest() {
		t.Fatalf("Exists after Put = %v, %v, %v", got.Digest(), ok, err)
	}
	out := filepath.Join(t.TempDir(), "back")
	got, err := s.Get(ctx, u, out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != m.Digest() {
		t.Fatalf("digest %s, want %s", got.Digest(), m.Digest())
	}
	sameTree(t, dir, out, m)
	if _, err := artifact.Read(out, "test/"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, artifact.StatCacheName)); err != nil {
		t.Errorf("Get recorded no stat cache (the next Verify re-reads every file): %v", err)
	}
	if err := artifact.Verify(out, got); err != nil {
		t.Fatal(err)
	}
	// A second Put is a no-op; a second Get keeps the verified copy.
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, u, out); err != nil {
		t.Fatal(err)
	}
	// Another artifact is never written over a committed one.
	other, _ := testArtifact(t, 10)
	if _, err := s.Put(ctx, other, u); err == nil || !strings.Contains(err.Error(), "holds another artifact") {
		t.Fatalf("Put of another artifact over %s: %v", u, err)
	}
	if got, ok, err := s.Exists(ctx, u); !ok || err != nil || got.Digest() != m.Digest() {
		t.Fatalf("after the refused Put: %v, %v, %v", got.Digest(), ok, err)
	}
}

// A cancelled (killed) upload leaves no visible artifact; the rerun resumes
// the multipart upload instead of starting over, and completes.
func TestCancelledUploadResumes(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	dir, m := testArtifact(t, 22<<20) // 5 parts of 5 MiB
	u := testPrefix(t, bucket)
	ctx, cancel := context.WithCancel(context.Background())
	var parts atomic.Int32
	s.Workers = 1
	s.afterPart = func(key string, part int32) {
		if part > 0 && parts.Add(1) == 2 {
			cancel()
		}
	}
	if _, err := s.Put(ctx, dir, u); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put after cancel = %v, want context.Canceled", err)
	}
	bg := context.Background()
	if _, ok, err := s.Exists(bg, u); ok || err != nil {
		t.Fatalf("Exists after a cancelled Put = %v, %v; want absent", ok, err)
	}
	if _, err := s.Get(bg, u, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoArtifact) {
		t.Fatalf("Get after a cancelled Put = %v, want ErrNoArtifact", err)
	}
	parts.Store(0)
	s.afterPart = func(key string, part int32) {
		if part > 0 {
			parts.Add(1)
		}
	}
	s.Workers = 4
	if _, err := s.Put(bg, dir, u); err != nil {
		t.Fatal(err)
	}
	if n := parts.Load(); n >= 5 {
		t.Errorf("the rerun uploaded %d parts of 5: it did not resume", n)
	}
	out := filepath.Join(t.TempDir(), "back")
	if _, err := s.Get(bg, u, out); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, out, m)
}

func TestConcurrentPublishers(t *testing.T) {
	cfg, bucket := testServer(t)
	dir, m := testArtifact(t, 11<<20)
	u := testPrefix(t, bucket)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		s := testStore(t, cfg)
		wg.Go(func() { _, errs[i] = s.Put(context.Background(), dir, u) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v", i, err)
		}
	}
	out := filepath.Join(t.TempDir(), "back")
	if _, err := testStore(t, cfg).Get(context.Background(), u, out); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, out, m)
}

// Credentials never appear in errors; the error names the bucket.
func TestHostileWrongCredentials(t *testing.T) {
	cfg, bucket := testServer(t)
	cfg.AccessKey, cfg.SecretKey = "AKIAWRONGKEY12345678", "wrongsecretwrongsecretwrongsecret1234"
	s := testStore(t, cfg)
	dir, _ := testArtifact(t, 10)
	u := testPrefix(t, bucket)
	_, err := s.Put(context.Background(), dir, u)
	if err == nil {
		t.Fatal("Put with wrong credentials succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, bucket) || !strings.Contains(msg, "credentials") {
		t.Errorf("error %q does not name the bucket and the credentials", msg)
	}
	if strings.Contains(msg, cfg.AccessKey) || strings.Contains(msg, cfg.SecretKey) {
		t.Errorf("error %q leaks a credential", msg)
	}
	if _, err := s.Get(context.Background(), u, t.TempDir()+"/x"); err == nil || strings.Contains(err.Error(), cfg.AccessKey) {
		t.Errorf("Get with wrong credentials: %v", err)
	}
}

func TestMissingBucket(t *testing.T) {
	cfg, _ := testServer(t)
	s := testStore(t, cfg)
	dir, _ := testArtifact(t, 10)
	u := URL{Bucket: "mdlm-no-such-bucket", Prefix: "x"}
	_, err := s.Put(context.Background(), dir, u)
	if err == nil || !strings.Contains(err.Error(), `bucket "mdlm-no-such-bucket" does not exist`) {
		t.Fatalf("Put to a missing bucket: %v", err)
	}
	if _, _, err := s.Exists(context.Background(), u); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Exists on a missing bucket: %v", err)
	}
}

// A store that serves bytes other than the manifest says (a corrupt or
// replaced object) yields an error and no local directory; a manifest naming
// a path outside the artifact is refused before anything is written.
func TestHostileStoreContent(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, _ := testArtifact(t, 6<<20)
	u := testPrefix(t, bucket)
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	key := u.Key("sub/small.txt")
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &key, Body: strings.NewReader("HELLO")}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "back")
	if _, err := s.Get(ctx, u, out); err == nil || !strings.Contains(err.Error(), "sub/small.txt") {
		t.Fatalf("Get of a corrupt object = %v, want an error naming it", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("Get of a corrupt object left %s: %v", out, err)
	}
	evil := testPrefix(t, bucket)
	mkey := evil.Key(artifact.ManifestName)
	raw := `{"type":"test/v1","files":[{"path":"../escape","size":1,"sha256":"` + strings.Repeat("a", 64) + `"}]}`
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &evil.Bucket, Key: &mkey, Body: strings.NewReader(raw), ContentLength: aws.Int64(int64(len(raw)))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, evil, filepath.Join(t.TempDir(), "evil")); err == nil {
		t.Fatal("Get accepted a manifest naming ../escape")
	}
}
