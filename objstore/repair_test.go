package objstore

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/internal/s3test"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// A published artifact whose objects are deleted or overwritten behind the
// store's back: Get names every damaged object with both digests and installs
// nothing; a second Put of the same artifact uploads them again.
func TestPutRepairsDeletedAndOverwritten(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, m := testArtifact(t, 6<<20+7) // big.bin is a multipart upload
	u := testPrefix(t, bucket)
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	small, big := u.Key("sub/small.txt"), u.Key("big.bin")
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &u.Bucket, Key: &small}); err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 6<<20+7)
	rand.Read(other)
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &big, Body: strings.NewReader(string(other)),
		ContentLength: aws.Int64(int64(len(other)))}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Exists(ctx, u); ok || err != nil {
		t.Fatalf("Exists of the damaged artifact = %v, %v; want false", ok, err)
	}
	out := filepath.Join(t.TempDir(), "back")
	_, err := s.Get(ctx, u, out)
	checkDamaged(t, err, u, m, []string{"big.bin", "sub/small.txt"})
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Fatalf("Get of a damaged artifact installed %s: %v", out, serr)
	}

	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatalf("Put over the damaged copy: %v", err)
	}
	if _, ok, err := s.Exists(ctx, u); !ok || err != nil {
		t.Fatalf("Exists after the repair = %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, u, out); err != nil {
		t.Fatalf("Get after the repair: %v", err)
	}
	sameTree(t, dir, out, m)
}

// An object whose bytes rot on the server keeps the size and sha256 recorded
// at upload, so only a download finds it; Repair with the files a failed Get
// named uploads them again.
func TestRepairRottenObject(t *testing.T) {
	cfg, bucket := testServer(t)
	data := s3test.DataDir(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, m := testArtifact(t, 1000)
	u := testPrefix(t, bucket)
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(data, bucket, filepath.FromSlash(u.Key("sub/small.txt")))
	if err := os.WriteFile(file, []byte("HELLO"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Exists(ctx, u); !ok || err != nil {
		t.Fatalf("Exists = %v, %v: the rot should not show in the metadata", ok, err)
	}
	out := filepath.Join(t.TempDir(), "back")
	_, err := s.Get(ctx, u, out)
	checkDamaged(t, err, u, m, []string{"sub/small.txt"})
	if _, err := s.Put(ctx, dir, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, u, out); err == nil {
		t.Fatal("a Put without the damaged files repaired a rotten object it cannot see")
	}
	if _, err := s.Repair(ctx, dir, u, []string{"sub/small.txt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, u, out); err != nil {
		t.Fatalf("Get after Repair: %v", err)
	}
	sameTree(t, dir, out, m)
}

// checkDamaged asserts err reports exactly the damaged files want, each with
// its bucket/key and the manifest's digest.
func checkDamaged(t *testing.T, err error, u URL, m artifact.Manifest, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("Get of a damaged artifact succeeded")
	}
	got := DamagedFiles(err)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("damaged files %q, want %q (err %v)", got, want, err)
	}
	var d *DamagedError
	if !errors.As(err, &d) {
		t.Fatalf("%v is no *DamagedError", err)
	}
	for _, f := range m.Files {
		if !slices.Contains(want, f.Path) {
			continue
		}
		for _, w := range []string{"s3://" + u.Bucket + "/" + u.Key(f.Path), f.SHA256} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %s", err, w)
			}
		}
	}
}

func TestDamagedFilesWalksJoinedAndWrapped(t *testing.T) {
	a := &DamagedError{Path: "a"}
	b := &DamagedError{Path: "b"}
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{nil, nil},
		{errors.New("plain"), nil},
		{a, []string{"a"}},
		{errors.Join(a, errors.New("x"), b), []string{"a", "b"}},
		{errors.Join(errors.Join(a), wrap(b)), []string{"a", "b"}},
	} {
		if got := DamagedFiles(tc.err); !slices.Equal(got, tc.want) {
			t.Errorf("DamagedFiles(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func wrap(err error) error { return &Error{msg: "wrapped", err: err} }

func TestRangeOf(t *testing.T) {
	for _, tc := range []struct {
		header string
		size   int64
		want   bool
	}{
		{"", 10, true},
		{"bytes 0-9/10", 10, true},
		{"bytes 0-9/11", 10, false},
		{"bytes 0-9/*", 10, true},
		{"bytes 0-9/x", 10, false},
	} {
		if got := rangeOf(tc.header, tc.size); got != tc.want {
			t.Errorf("rangeOf(%q, %d) = %v, want %v", tc.header, tc.size, got, tc.want)
		}
	}
}

func TestChildName(t *testing.T) {
	for _, tc := range []struct {
		prefix, listed, want string
		ok                   bool
	}{
		{"p/", "p/text-0123/", "text-0123", true},
		{"", "x/", "x", true},
		{"p/", "p/../", "", false},
		{"p/", "p/./", "", false},
		{"p/", "p//", "", false},
		{"p/", "p/a/b/", "", false},
		{"p/", "p/a", "", false},
		{"p/", "q/a/", "", false},
		{"p/", "p/a\\b/", "", false},
		{"p/", "p/\x00/", "", false},
	} {
		got, ok := childName(tc.prefix, tc.listed)
		if got != tc.want || ok != tc.ok {
			t.Errorf("childName(%q, %q) = %q, %v; want %q, %v", tc.prefix, tc.listed, got, ok, tc.want, tc.ok)
		}
	}
}

// Children lists the outputs under a cache prefix, one name each, and not
// the files inside them.
func TestChildren(t *testing.T) {
	cfg, bucket := testServer(t)
	s := testStore(t, cfg)
	ctx := context.Background()
	dir, _ := testArtifact(t, 10)
	root := testPrefix(t, bucket)
	for _, name := range []string{"b-1", "a-2"} {
		u, err := root.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, dir, u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Children(ctx, root)
	if err != nil || !slices.Equal(got, []string{"a-2", "b-1"}) {
		t.Fatalf("Children = %q, %v; want [a-2 b-1]", got, err)
	}
}
