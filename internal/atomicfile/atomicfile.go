// Package atomicfile publishes files atomically: write a temporary file in the
// destination directory, sync it, rename it over the destination, sync the
// directory. A failure at any point leaves the previous file (if any) in place and
// no temporary file behind.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/internal/filehash"
)

// Write runs write against a temporary file next to path and publishes it under
// path only if write and the sync succeed. The bytes are hashed as they are
// written (filehash), so publishing the file in an artifact does not read it again.
func Write(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	if err = tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	hw := filehash.NewWriter(tmp)
	if err = write(hw); err != nil { // a callee that closes hw early is fine: Close is idempotent
		hw.Abort()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = hw.Close(); err != nil { // flush, fsync, close
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	SyncDir(dir)
	return nil
}

// SyncDir fsyncs a directory so a rename inside it is durable (best effort).
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
