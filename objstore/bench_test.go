package objstore

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// TestThroughput measures Put and Get of one artifact of
// $MDLM_TEST_S3_BENCH_MB megabytes against the test server (bench/README's
// object store rows), beside `cp` of the same file on the same disk and the
// server alone: one plain SDK PutObject and one GetObject of the whole file,
// streamed, nothing hashed or verified by us. It skips unless that is set.
func TestThroughput(t *testing.T) {
	mb, _ := strconv.Atoi(os.Getenv("MDLM_TEST_S3_BENCH_MB"))
	if mb <= 0 {
		t.Skip("MDLM_TEST_S3_BENCH_MB is unset")
	}
	cfg, bucket := testServer(t)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Knobs for tuning runs: $MDLM_TEST_S3_BENCH_WORKERS, $MDLM_TEST_S3_BENCH_PART_MB.
	if w, _ := strconv.Atoi(os.Getenv("MDLM_TEST_S3_BENCH_WORKERS")); w > 0 {
		s.Workers = w
	}
	if p, _ := strconv.Atoi(os.Getenv("MDLM_TEST_S3_BENCH_PART_MB")); p > 0 {
		s.PartSize = int64(p) << 20
	}
	t.Logf("%d MB, parts of %d MiB, %d workers", mb, s.PartSize>>20, s.Workers)
	dir := filepath.Join(t.TempDir(), "art")
	if _, err := artifact.Publish(dir, artifact.Manifest{Type: "test/v1"}, func(tmp string) error {
		return randomFile(filepath.Join(tmp, "data.bin"), mb)
	}); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.bin")
	ctx := context.Background()
	u := testPrefix(t, bucket)
	t.Cleanup(func() { // two copies of MDLM_TEST_S3_BENCH_MB on the server's disk otherwise
		for _, rel := range []string{artifact.ManifestName, "data.bin", "plain.bin"} {
			key := u.Key(rel)
			s.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &u.Bucket, Key: &key})
		}
	})
	timed := func(name string, fn func() error) {
		t.Helper()
		syscall.Sync() // the previous write's dirty pages must not slow this one
		start := time.Now()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := time.Since(start)
		t.Logf("%-44s %6.2fs %6.0f MB/s", name, d.Seconds(), float64(mb)/d.Seconds())
	}
	timed("cp (same disk)", func() error { return exec.Command("cp", data, filepath.Join(t.TempDir(), "copy")).Run() })
	timed("server alone: one SDK PutObject", func() error { return plainPut(ctx, s, u, data) })
	timed("objstore Put (sha256 checked)", func() error { _, err := s.Put(ctx, dir, u); return err })
	timed("server alone: one SDK GetObject", func() error { return plainGet(ctx, s, u, filepath.Join(t.TempDir(), "plain")) })
	timed("objstore Get (sha256 verified)", func() error { _, err := s.Get(ctx, u, filepath.Join(t.TempDir(), "back")); return err })
}

func randomFile(path string, mb int) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for i := range mb {
		buf[0], buf[1] = byte(i), byte(i>>8) // distinct megabytes, without paying for mb of randomness
		if _, err := fh.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

func plainPut(ctx context.Context, s *Store, u URL, path string) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	fi, _ := fh.Stat()
	key := u.Key("plain.bin")
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &key, Body: fh, ContentLength: aws.Int64(fi.Size())})
	return err
}

func plainGet(ctx context.Context, s *Store, u URL, path string) error {
	key := u.Key("plain.bin")
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &u.Bucket, Key: &key})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = io.Copy(fh, out.Body)
	return err
}
