package filehash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriterHashesAndRemembers(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // several buffers
	want := sha256.Sum256(data)
	for _, sizes := range [][]int{{len(data)}, {1, 7, 1 << 20, 3}} {
		path := filepath.Join(dir, "f.bin")
		w, err := Create(path)
		if err != nil {
			t.Fatal(err)
		}
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := min(len(rest), sizes[i%len(sizes)])
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if w.Close() != nil {
			t.Error("second Close failed")
		}
		if w.SHA256() != hex.EncodeToString(want[:]) || w.Size() != int64(len(data)) {
			t.Fatalf("writer digest %s size %d", w.SHA256(), w.Size())
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, data) {
			t.Fatal("file content differs")
		}
		moved := filepath.Join(dir, "moved.bin")
		os.Rename(path, moved)
		if sum, size, ok := Known(moved); !ok || sum != w.SHA256() || size != int64(len(data)) {
			t.Errorf("Known after rename = %s %d %v", sum, size, ok)
		}
		os.Remove(moved)
	}
}

func TestKnownForgetsChangedFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.txt")
	w, _ := Create(path)
	w.Write([]byte("hello"))
	w.Close()
	os.WriteFile(path, []byte("hello, world"), 0o644) // same inode, new size
	if _, _, ok := Known(path); ok {
		t.Error("Known trusts a rewritten file")
	}
	sum, size, err := Sum(path)
	want := sha256.Sum256([]byte("hello, world"))
	if err != nil || sum != hex.EncodeToString(want[:]) || size != 12 {
		t.Errorf("Sum = %s %d %v", sum, size, err)
	}
	if _, _, ok := Known(path); ok {
		t.Error("Sum of a foreign file must not be remembered")
	}
}

func TestSumAllAndAbort(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 5; i++ {
		p := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 1000*i), 0o644)
		paths = append(paths, p)
	}
	paths = append(paths, filepath.Join(dir, "missing"))
	res := SumAll(paths)
	for i, r := range res[:5] {
		want := sha256.Sum256(bytes.Repeat([]byte{byte(i)}, 1000*i))
		if r.Err != nil || r.SHA256 != hex.EncodeToString(want[:]) || r.Size != int64(1000*i) {
			t.Errorf("%d: %+v", i, r)
		}
	}
	if res[5].Err == nil {
		t.Error("missing file: no error")
	}
	w, _ := Create(filepath.Join(dir, "aborted"))
	w.Write([]byte("partial"))
	w.Abort()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("write after Abort succeeded")
	}
	if _, _, ok := Known(filepath.Join(dir, "aborted")); ok {
		t.Error("aborted file remembered")
	}
}

// A full disk (/dev/full) stops writes early and fails Close with ENOSPC.
func TestWriterFullDisk(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	w := NewWriter(f)
	buf := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = w.Write(buf)
	}
	if werr == nil || !errors.Is(werr, syscall.ENOSPC) || !strings.Contains(werr.Error(), "/dev/full") {
		t.Errorf("Write on a full disk: %v", werr)
	}
	if err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close on a full disk: %v", err)
	}
}
