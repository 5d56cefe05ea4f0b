package artifact

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishReadVerify(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a")
	m, err := Publish(dir, Manifest{Type: "test/v1", Stage: "unit"}, func(tmp string) error {
		os.MkdirAll(filepath.Join(tmp, "sub"), 0o755)
		os.WriteFile(filepath.Join(tmp, "sub", "x.bin"), []byte("hello"), 0o644)
		return os.WriteFile(filepath.Join(tmp, "y.txt"), []byte("world"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Path != "sub/x.bin" || m.Files[0].Size != 5 {
		t.Fatalf("files = %+v", m.Files)
	}
	got, err := Read(dir, "test/")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest() != m.Digest() || !strings.HasPrefix(m.Digest(), "sha256:") {
		t.Errorf("digest %s != %s", got.Digest(), m.Digest())
	}
	if err := Verify(dir, got); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, "checkpoint/v1"); err == nil || !strings.Contains(err.Error(), `"test/v1"`) {
		t.Errorf("type mismatch: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "y.txt"), []byte("World"), 0o644)
	if err := Verify(dir, got); err == nil || !strings.Contains(err.Error(), "y.txt") {
		t.Errorf("corruption: err = %v", err)
	}
	// A failing fill publishes nothing and keeps the previous artifact.
	_, err = Publish(dir, Manifest{Type: "test/v1"}, func(string) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("failing fill published")
	}
	if _, err := Read(dir, "test/v1"); err != nil {
		t.Errorf("previous artifact lost: %v", err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Errorf("leftovers in %s: %v", root, entries)
	}
	if _, err := Read(root, ""); !errors.Is(err, ErrNotArtifact) {
		t.Errorf("plain dir: err = %v", err)
	}
}
