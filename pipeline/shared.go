package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/stage"
)

// A shared cache holds stage outputs under the same names as the local cache
// (<stage>-<key>), so a machine with the same pipeline and inputs finds them:
// CI pulls the trained checkpoint by its key and reruns only the eval stages.
// Outputs are immutable and content-addressed, so copying is safe both ways;
// every copy goes to a temporary name first and is renamed into place, and a
// pulled copy is verified against its manifest before it is used.

// pull copies a finished output for out from the shared cache and returns its
// digest, or "" when the shared cache does not have it. In a plan (copy false)
// nothing is copied.
func (e *Engine) pull(sp stage.Spec, out string, copy bool) (string, error) {
	src := filepath.Join(e.Shared, filepath.Base(out))
	dig := outputDigest(sp, src)
	if dig == "" || !copy {
		return dig, nil
	}
	if err := copyTree(src, out); err != nil {
		return "", fmt.Errorf("pulling %s from the shared cache: %w", filepath.Base(out), err)
	}
	if got := outputDigest(sp, out); got != dig {
		return "", fmt.Errorf("pulled %s from %s, but the copy does not verify", filepath.Base(out), e.Shared)
	}
	return dig, nil
}

// push copies a verified output into the shared cache unless a copy that
// verifies is there already (a damaged one is replaced).
func (e *Engine) push(sp stage.Spec, out string) error {
	if e.Shared == "" {
		return nil
	}
	dst := filepath.Join(e.Shared, filepath.Base(out))
	if outputDigest(sp, dst) != "" {
		return nil
	}
	if err := os.MkdirAll(e.Shared, 0o755); err != nil {
		return fmt.Errorf("shared cache: %w", err)
	}
	if err := copyTree(out, dst); err != nil {
		return fmt.Errorf("pushing %s to the shared cache: %w", filepath.Base(out), err)
	}
	return nil
}

// copyTree copies the regular files of src into a temporary sibling of dst,
// then renames it to dst (replacing an incomplete or stale dst). Files are
// copied, not hard-linked: a later change to one copy must never reach the
// other.
func copyTree(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	err = filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(tmp, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		default:
			return filehash.CopyFile(path, target)
		}
	})
	if err == nil {
		os.Chmod(tmp, 0o755)
		os.RemoveAll(dst) // an earlier incomplete or unverifiable copy
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.RemoveAll(tmp)
	}
	return err
}
