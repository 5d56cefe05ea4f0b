package artifact

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// Verify trusts the stat cache only while a file's identity is unchanged, and
// MDLM_VERIFY=full bypasses it.
func TestVerifyStatCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a")
	m, err := Publish(dir, Manifest{Type: "test/v1"}, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "x.bin"), []byte("0123456789"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // past the clock tick of the writes
	if err := Verify(dir, m); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, StatCacheName))
	if err != nil || !strings.Contains(string(raw), m.Files[0].SHA256) {
		t.Fatalf("stat cache after Verify: %s, %v", raw, err)
	}
	// A cache entry is what Verify relies on: claim another digest in both the
	// manifest and the cache, and only a full verification notices.
	fake := m
	fake.Files = []File{{Path: "x.bin", Size: 10, SHA256: strings.Repeat("ab", 32)}}
	os.WriteFile(filepath.Join(dir, StatCacheName), []byte(strings.ReplaceAll(string(raw), m.Files[0].SHA256, fake.Files[0].SHA256)), 0o644)
	time.Sleep(20 * time.Millisecond)
	if err := Verify(dir, fake); err != nil {
		t.Errorf("cached entry not trusted: %v", err)
	}
	t.Setenv("MDLM_VERIFY", "full")
	if err := Verify(dir, fake); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("MDLM_VERIFY=full: err = %v", err)
	}
	t.Setenv("MDLM_VERIFY", "")
	// Same size, mtime put back: the ctime still changes, so the change is found.
	st, _ := os.Stat(filepath.Join(dir, "x.bin"))
	os.WriteFile(filepath.Join(dir, "x.bin"), []byte("0123456780"), 0o644)
	os.Chtimes(filepath.Join(dir, "x.bin"), st.ModTime(), st.ModTime())
	if err := Verify(dir, m); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("in-place edit with restored mtime: err = %v", err)
	}
	// Truncation is caught from the size alone.
	os.WriteFile(filepath.Join(dir, "x.bin"), []byte("01234"), 0o644)
	if err := Verify(dir, m); err == nil || !strings.Contains(err.Error(), "size 5") {
		t.Errorf("truncated: err = %v", err)
	}
}
