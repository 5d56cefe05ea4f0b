package objstore

// Streaming reads against the real S3 server (scripts/s3-server.sh); they
// skip without one.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdlm-go/mdlm/internal/s3test"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// fileOf returns the manifest entry for path.
func fileOf(t *testing.T, m artifact.Manifest, path string) artifact.File {
	t.Helper()
	for _, f := range m.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("%s not in the manifest", path)
	return artifact.File{}
}

func TestStreamFileFromServer(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, m := testArtifact(t, 3*StreamBlockSize+12345)
	u := testPrefix(t, bucket)
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.OpenFile(ctx, u, fileOf(t, m, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tail := make([]byte, 100)
	if _, err := f.ReadAt(tail, f.Size()-100); err != nil || !bytes.Equal(tail, want[len(want)-100:]) {
		t.Fatalf("footer ReadAt: %v", err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	if f.Fetched() > f.Size()+StreamBlockSize {
		t.Errorf("downloaded %d bytes for a %d-byte file", f.Fetched(), f.Size())
	}
	for _, p := range []string{"empty", "sub/small.txt"} {
		f, err := s.OpenFile(ctx, u, fileOf(t, m, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Verify(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestStreamFileDamaged(t *testing.T) {
	cfg, bucket := testServer(t)
	data := s3test.DataDir(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, m := testArtifact(t, StreamBlockSize+1000)
	u := testPrefix(t, bucket)
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	big := fileOf(t, m, "big.bin")

	t.Run("rotten", func(t *testing.T) {
		obj := filepath.Join(data, bucket, filepath.FromSlash(u.Key("sub/small.txt")))
		if err := os.WriteFile(obj, []byte("HELLO"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := s.OpenFile(ctx, u, fileOf(t, m, "sub/small.txt"))
		if err != nil {
			t.Fatal(err)
		}
		checkDamaged(t, f.Verify(), u, m, []string{"sub/small.txt"})
	})
	t.Run("replaced while read", func(t *testing.T) {
		f, err := s.OpenFile(ctx, u, big)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(make([]byte, 10), 0); err != nil {
			t.Fatal(err)
		}
		other := make([]byte, big.Size)
		rand.Read(other)
		key := u.Key("big.bin")
		if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &key, Body: bytes.NewReader(other)}); err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(make([]byte, 10), big.Size-10)
		var d *DamagedError
		if !errors.As(err, &d) || d.Path != "big.bin" {
			t.Fatalf("ReadAt after the object was replaced = %v, want a *DamagedError", err)
		}
	})
	t.Run("other size", func(t *testing.T) {
		f := fileOf(t, m, "empty")
		f.Size = 7
		if _, err := s.OpenFile(ctx, u, f); !errors.As(err, new(*DamagedError)) {
			t.Fatalf("OpenFile of an object of another size = %v", err)
		}
	})
}
