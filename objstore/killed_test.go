package objstore

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Environment of the killed-publisher subprocess (TestHelperKilledPut).
const (
	helperDir = "MDLM_OBJSTORE_HELPER_DIR"
	helperURL = "MDLM_OBJSTORE_HELPER_URL"
)

// TestHelperKilledPut is the publisher TestKilledUploadResumes kills: it
// uploads parts one at a time and SIGKILLs itself after the second, as an
// out-of-memory kill or a lost node would, with no chance to clean up.
func TestHelperKilledPut(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		t.Skip("run by TestKilledUploadResumes")
	}
	cfg, _ := testServer(t)
	s := testStore(t, cfg)
	s.Workers = 1
	u, err := ParseURL(os.Getenv(helperURL))
	if err != nil {
		t.Fatal(err)
	}
	var parts atomic.Int32
	s.afterPart = func(key string, part int32) {
		if part > 0 && parts.Add(1) == 2 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	s.Put(context.Background(), dir, u)
	t.Fatal("Put returned: the helper was not killed")
}

// A publisher killed (SIGKILL) midway leaves no visible artifact; the rerun
// resumes its multipart upload, sending only the parts it lacks, completes,
// and aborts the stale uploads of that key (here also one a crashed
// publisher started and never used).
func TestKilledUploadResumes(t *testing.T) {
	cfg, bucket := testServer(t)
	dir, m := testArtifact(t, 22<<20) // big.bin: 5 parts of 5 MiB
	u := testPrefix(t, bucket)
	s := testStore(t, cfg)
	ctx := context.Background()
	key := u.Key("big.bin")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKilledPut$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDir+"="+dir, helperURL+"="+u.String())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper: %v, want killed by SIGKILL\n%s", err, out)
	}
	if _, ok, err := s.Exists(ctx, u); ok || err != nil {
		t.Fatalf("Exists after a killed Put = %v, %v; want absent", ok, err)
	}
	if _, err := s.Get(ctx, u, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoArtifact) {
		t.Fatalf("Get after a killed Put = %v, want ErrNoArtifact", err)
	}
	if _, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &u.Bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	if ups, err := s.uploadsOf(ctx, u, key); err != nil || len(ups) != 2 {
		t.Fatalf("unfinished uploads of %s before the rerun: %d, %v; want 2", key, len(ups), err)
	}
	var sent atomic.Int32
	s.afterPart = func(key string, part int32) {
		if part > 0 {
			sent.Add(1)
		}
	}
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	if n := sent.Load(); n != 3 {
		t.Errorf("the rerun sent %d parts; the killed run had sent 2 of 5, so want 3", n)
	}
	if ups, err := s.uploadsOf(ctx, u, key); err != nil || len(ups) != 0 {
		t.Errorf("unfinished uploads of %s after the rerun: %d, %v; want none", key, len(ups), err)
	}
	back := filepath.Join(t.TempDir(), "back")
	if _, err := s.Get(ctx, u, back); err != nil {
		t.Fatal(err)
	}
	sameTree(t, dir, back, m)
}
