package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// The lock file, <pipeline file>.lock.json beside the pipeline, records each
// stage's last settled output: its key and what the key covered, so that a
// later miss can say what changed (why.go), and so that an output edited
// after it was built is not taken as cached (lockDisagrees). It is a record,
// not the source of truth: outputs are verified on their own.

// MaxLockBytes bounds the lock file the engine reads: an entry is about a
// kilobyte (a stage's resolved parameters and input digests), so this holds
// tens of thousands of stages.
const MaxLockBytes = 64 << 20

// LockEntry records a finished stage in the lock file beside the pipeline.
type LockEntry struct {
	// Format is the cache key's format (KeyFormat) when the entry was
	// written; 0 for an entry older than the field, which was format 1.
	Format  int               `json:"format,omitempty"`
	Key     string            `json:"key"`
	Kind    string            `json:"kind"`
	Version int               `json:"version"`
	Out     string            `json:"out"`
	Digest  string            `json:"digest"`
	Params  map[string]any    `json:"params"`
	Inputs  map[string]string `json:"inputs"` // input (or "<flag>:<file>") -> digest
}

func lockPath(f *File) string { return f.Path + ".lock.json" }

// readLockFile reads the lock file. One larger than MaxLockBytes is an error
// naming it; none, or one that cannot be read or parsed, is an empty lock
// (with a warning), to be rewritten by the next update.
func readLockFile(f *File) (map[string]LockEntry, error) {
	path := lockPath(f)
	raw, err := readAtMost(path, MaxLockBytes)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return map[string]LockEntry{}, nil
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("pipeline lock %s: more than %d bytes; it is a record of past runs (outputs verify on their own), so removing it only makes the reasons less precise", path, MaxLockBytes)
	case err != nil:
		slog.Warn("pipeline lock file unreadable; taken as empty", "path", path, "err", err)
		return map[string]LockEntry{}, nil
	}
	lock := map[string]LockEntry{}
	if err := json.Unmarshal(raw, &lock); err != nil {
		slog.Warn("pipeline lock file does not parse; taken as empty", "path", path, "err", err)
		return map[string]LockEntry{}, nil
	}
	return lock, nil
}

// readLock is the lock file for a second look: empty when it cannot be read.
func readLock(f *File) map[string]LockEntry {
	lock, err := readLockFile(f)
	if err != nil {
		return map[string]LockEntry{}
	}
	return lock
}

// lockDisagrees returns why a verified output is not taken as cached when the
// lock file recorded another digest for the same key: its manifest was edited
// to match edited files (issue 19, defect 16c). The lock file is read again
// first, in case another run has just rebuilt the stage.
func lockDisagrees(f *File, name, key, dig string, prev LockEntry) string {
	if prev.Key != key || prev.Digest == "" || prev.Digest == dig {
		return ""
	}
	if now := readLock(f)[name]; now.Key != key || now.Digest == dig {
		return ""
	}
	return fmt.Sprintf("output digest %.19s differs from the lock file's %.19s for this key (changed after it was built)", dig, prev.Digest)
}

// updateLock merges entries into the lock file under an exclusive flock, so
// stages running at once (scheduler jobs, array tasks) do not drop each other's
// entries.
func updateLock(f *File, entries map[string]LockEntry) error {
	guard, err := os.OpenFile(lockPath(f)+".flock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("pipeline lock %s: %w", lockPath(f), err)
	}
	defer guard.Close()
	switch err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); {
	case err == nil:
		defer syscall.Flock(int(guard.Fd()), syscall.LOCK_UN)
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.EINVAL):
		// A file system without locks (some NFS mounts): the lock file is a
		// record, not the source of truth (outputs are verified on their own),
		// so go on; at worst a concurrent update drops an entry.
	default:
		return fmt.Errorf("pipeline lock %s: %w", lockPath(f), err)
	}
	lock, err := readLockFile(f)
	if err != nil {
		return err
	}
	for name, e := range entries {
		lock[name] = e
	}
	raw, err := json.MarshalIndent(lock, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline lock %s: %w", lockPath(f), err)
	}
	return atomicfile.Write(lockPath(f), func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}
