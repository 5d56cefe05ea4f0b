package objstore

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
)

// TestThroughput measures Put and Get of one artifact of
// $MDLM_TEST_S3_BENCH_MB megabytes against the test server (bench/README's
// object store row); it skips unless that is set.
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
	dir := filepath.Join(t.TempDir(), "art")
	if _, err := artifact.Publish(dir, artifact.Manifest{Type: "test/v1"}, func(tmp string) error {
		fh, err := os.Create(filepath.Join(tmp, "data.bin"))
		if err != nil {
			return err
		}
		defer fh.Close()
		buf := make([]byte, 1<<20)
		for range mb {
			rand.Read(buf)
			if _, err := fh.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	u := testPrefix(t, bucket)
	start := time.Now()
	if _, err := s.Put(context.Background(), dir, u); err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	start = time.Now()
	if _, err := s.Get(context.Background(), u, filepath.Join(t.TempDir(), "back")); err != nil {
		t.Fatal(err)
	}
	down := time.Since(start)
	t.Logf("%d MB: put %.2fs (%.0f MB/s), get %.2fs (%.0f MB/s, sha256 verified)", mb, up.Seconds(), float64(mb)/up.Seconds(), down.Seconds(), float64(mb)/down.Seconds())
}
