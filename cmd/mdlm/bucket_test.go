package main

// `mdlm run` with its cache in a bucket (issue 25), against the real
// S3-compatible server scripts/s3-server.sh starts; skipped without it.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"time"

	"github.com/mdlm-go/mdlm/internal/s3test"
)

// s3TestEnv sets the AWS variables for the test server and returns a fresh
// s3:// prefix of its bucket, or skips.
func s3TestEnv(t *testing.T) string { return s3test.Prefix(t, "cli") }

// The test pipeline with its cache in a bucket: built once; a rerun from an
// empty local mirror, without the lock file, runs nothing and downloads
// nothing; a changed late stage runs alone, its input streamed from the bucket.
func TestRunCacheInBucket(t *testing.T) {
	loc := s3TestEnv(t)
	dir, _, file := testPipelineFiles(t)
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "m1"))
	if first := runPipeline(t, file, loc); strings.Count(first, "$ mdlm") != 3 {
		t.Fatalf("first run:\n%s", first)
	}
	mirror := filepath.Join(dir, "m2")
	t.Setenv("MDLM_CACHE", mirror)
	os.Remove(file + ".lock.json")
	start := time.Now()
	second := runPipeline(t, file, loc)
	t.Logf("rerun from an empty mirror: %s", time.Since(start))
	if strings.Contains(second, "$ mdlm") || strings.Count(second, "from the cache "+loc) != 3 {
		t.Errorf("rerun from an empty mirror ran stages:\n%s", second)
	}
	if outs, _ := filepath.Glob(filepath.Join(mirror, "s3", "*", "*", "*", "*-*")); len(outs) != 0 {
		t.Errorf("a rerun that runs nothing downloaded %v", outs)
	}
	third := runPipeline(t, file, loc, "--set", "length=8")
	if strings.Count(third, "$ mdlm") != 1 || !strings.Contains(third, "$ mdlm [pack s3://") || !strings.Contains(third, "streaming tokens-") {
		t.Errorf("length change:\n%s", third)
	}
	if dry := runPipeline(t, file, loc, "--set", "length=8", "--dry-run"); strings.Count(dry, " cached ") != 3 {
		t.Errorf("after the length change:\n%s", dry)
	}
}

// The Slurm jobs of a pipeline whose cache is in a bucket get its URL, and no
// credential: they take those from the environment sbatch passes on.
func TestSlurmBucketArgs(t *testing.T) {
	loc := s3TestEnv(t)
	_, _, file := testPipelineFiles(t)
	t.Setenv("MDLM_CACHE", t.TempDir())
	out := runPipeline(t, file, loc, "--executor", "slurm", "--dry-run")
	if strings.Count(out, "--cache-dir "+loc) != 3 {
		t.Errorf("sbatch commands lack --cache-dir %s:\n%s", loc, out)
	}
	for _, secret := range []string{os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_ACCESS_KEY_ID")} {
		if strings.Contains(out, secret) {
			t.Errorf("a credential in the sbatch commands:\n%s", out)
		}
	}
}

// Wrong credentials stop the run before any stage, naming the bucket and no
// credential.
func TestRunBucketWrongCredentials(t *testing.T) {
	loc := s3TestEnv(t)
	const secret = "not-the-secret-0123456789"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	_, _, file := testPipelineFiles(t)
	out, errOut, code := mdlm(t, "run", file, "--cache-dir", loc)
	msg := out + errOut
	if code == 0 || !strings.Contains(msg, os.Getenv("MDLM_TEST_S3_BUCKET")) || strings.Contains(msg, "$ mdlm") {
		t.Errorf("exit %d:\n%s", code, msg)
	}
	if strings.Contains(msg, secret) || strings.Contains(msg, os.Getenv("AWS_ACCESS_KEY_ID")) {
		t.Errorf("a credential in the output:\n%s", msg)
	}
}
