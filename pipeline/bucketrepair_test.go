package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/internal/s3test"
)

// damageInBucket rewrites (same size, other bytes) or, with remove, deletes
// the object holding file of the output out in the bucket cache loc, through
// the test server's files: behind the store's back, metadata kept.
func damageInBucket(t *testing.T, loc, out, file string, remove bool) {
	t.Helper()
	data := s3test.DataDir(t)
	p := filepath.Join(data, filepath.FromSlash(strings.TrimPrefix(loc, "s3://")), filepath.Base(out), file)
	if remove {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		return
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.ToUpper(string(raw))), 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifiesInBucket reports whether the bucket's copy of out downloads and
// verifies.
func verifiesInBucket(t *testing.T, loc, out string) error {
	t.Helper()
	ctx := context.Background()
	b, err := bucketFor(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	u, err := b.at(filepath.Base(out))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.store.Get(ctx, u, filepath.Join(t.TempDir(), filepath.Base(out)))
	return err
}

// A cache in a bucket whose input object rotted (same size and recorded
// sha256, other bytes): the stage reading it streams it and fails; the
// engine then fetches the input, verified, the fetch fails, and the engine
// treats it as a miss: it rebuilds the input, runs the stage again on the
// local copy, and the push repairs the bucket's copy (stream.go).
func TestBucketCacheRottenInputRebuilt(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	var ran []string
	ds, err := typedEngine(t, loc, &ran).Run(ctx, twoStages(t, dir, "bytes"))
	if err != nil {
		t.Fatal(err)
	}
	text := ds[0].Out
	damageInBucket(t, loc, text, "data.bin", false)
	if err := verifiesInBucket(t, loc, text); err == nil || !strings.Contains(err.Error(), "data.bin is damaged") {
		t.Fatalf("Get of the rotten copy: %v; want an error naming data.bin", err)
	}

	// A fresh machine: an empty mirror at the same place (the typed engine's
	// outputs name their own path, so only the same place rebuilds them bit
	// for bit).
	if err := os.RemoveAll(filepath.Join(dir, "mirror1")); err != nil {
		t.Fatal(err)
	}
	ran = nil
	ds2, err := typedEngine(t, loc, &ran).Run(ctx, twoStages(t, dir, "gpt2"))
	if err != nil {
		t.Fatalf("a rotten input failed the run: %v", err)
	}
	if !slices.Equal(ran, []string{"tokenize", "download", "tokenize"}) {
		t.Fatalf("ran %q, want tokenize failing on the streamed input, the rotten input rebuilt, then tokenize", ran)
	}
	if ds2[0].Out != text {
		t.Fatalf("text output %s, then %s", text, ds2[0].Out)
	}
	if err := verifiesInBucket(t, loc, text); err != nil {
		t.Errorf("the bucket's copy was not repaired: %v", err)
	}
}

// An object of a cached output deleted from the bucket: the output is no
// longer settled there, the next run builds it, and its push uploads the
// missing object under the manifest already there.
func TestBucketCacheDeletedObjectRepaired(t *testing.T) {
	loc := s3Env(t)
	dir := t.TempDir()
	ctx := context.Background()
	t.Setenv("MDLM_CACHE", filepath.Join(dir, "mirror1"))
	var ran []string
	f := twoStages(t, dir, "bytes")
	ds, err := typedEngine(t, loc, &ran).Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	damageInBucket(t, loc, ds[0].Out, "data.bin", true)
	if err := verifiesInBucket(t, loc, ds[0].Out); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Get with a deleted object: %v; want it named missing", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "mirror1")); err != nil {
		t.Fatal(err)
	}
	os.Remove(lockPath(f))
	ran = nil
	if _, err := typedEngine(t, loc, &ran).Run(ctx, f); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []string{"download"}) {
		t.Fatalf("ran %q, want only the damaged stage", ran)
	}
	if err := verifiesInBucket(t, loc, ds[0].Out); err != nil {
		t.Errorf("the bucket's copy was not repaired: %v", err)
	}
}
