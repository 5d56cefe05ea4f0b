package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/internal/filelock"
	"github.com/mdlm-go/mdlm/objstore"
	"github.com/mdlm-go/mdlm/stage"
)

// A shared cache holds stage outputs under the same names as the local cache
// (<stage>-<key>), so a machine with the same pipeline and inputs finds them:
// CI pulls the trained checkpoint by its key and reruns only the eval stages.
// Outputs are immutable and content-addressed, so copying is safe both ways;
// every copy goes to a temporary name first and is renamed into place, and a
// pulled copy is verified against its manifest before it is used.
//
// Publication into the shared cache is atomic and idempotent (issue 19,
// defect 6): a complete copy there is never removed. When several machines
// push the same output, the first rename wins and the others, finding a copy
// that verifies, delete only their own temporary. A copy there that does not
// verify is renamed aside (asideInfix), never deleted in place while another
// machine may be reading it. Temporaries and set-aside copies older than
// StaleAfter are removed by later pushes and pulls of the same output; flock
// does not reach every machine of a shared file system, so age, not a lock,
// says that their writer is gone.

// StaleAfter is the age after which a temporary or set-aside copy in the
// shared cache is taken to be abandoned.
const StaleAfter = 24 * time.Hour

// asideInfix marks a damaged shared copy moved out of the way:
// .<name>.aside-<digits>.
const asideInfix = ".aside-"

// pushTries bounds the rename attempts of one push (each failed one means
// another machine renamed a copy in, or a damaged one was set aside).
const pushTries = 3

// SharedCache is a cache shared between machines: a directory (DirCache)
// or a bucket prefix (BucketCache), holding outputs under their local names
// (<stage>-<key>). The engine uses only this interface.
type SharedCache interface {
	// Digest returns the digest of its verified copy of the output named
	// name, or "" when it has none.
	Digest(ctx context.Context, sp stage.Spec, name string) (string, error)
	// Pull makes the local directory out a verified copy of its output of
	// the same name and returns the digest.
	Pull(ctx context.Context, sp stage.Spec, out string) (string, error)
	// Push publishes the verified local output out, unless a copy that
	// verifies is there already; concurrent pushes of one output all succeed.
	Push(ctx context.Context, sp stage.Spec, out string) error
	// String names it in logs and errors (never with credentials).
	String() string
}

// DirCache is a shared cache in a directory (a mount every machine sees).
type DirCache string

// Digest implements SharedCache.
func (d DirCache) Digest(_ context.Context, sp stage.Spec, name string) (string, error) {
	return outputDigest(sp, filepath.Join(string(d), name)), nil
}

// Pull implements SharedCache.
func (d DirCache) Pull(_ context.Context, sp stage.Spec, out string) (string, error) {
	src := filepath.Join(string(d), filepath.Base(out))
	dig := outputDigest(sp, src)
	if dig == "" {
		return "", fmt.Errorf("%s has no verified %s", d, filepath.Base(out))
	}
	if err := publishShared(sp, src, out); err != nil {
		return "", err
	}
	if got := outputDigest(sp, out); got != dig {
		return "", fmt.Errorf("pulled %s from %s, but the copy does not verify", filepath.Base(out), d)
	}
	return dig, nil
}

// Push implements SharedCache.
func (d DirCache) Push(_ context.Context, sp stage.Spec, out string) error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("shared cache %s: %w", string(d), err)
	}
	return publishShared(sp, out, filepath.Join(string(d), filepath.Base(out)))
}

func (d DirCache) String() string { return string(d) }

// shared is the engine's shared cache: the bucket of a cache in a bucket
// (the cache of record), else the bucket or directory Shared, else nil.
func (e *Engine) shared(ctx context.Context) (SharedCache, error) {
	switch {
	case e.cacheInBucket():
		return bucketFor(ctx, e.CacheDir)
	case objstore.IsURL(e.Shared):
		return bucketFor(ctx, e.Shared)
	case e.Shared != "":
		return DirCache(e.Shared), nil
	}
	return nil, nil
}

// sharedName names the shared cache in reasons and errors.
func (e *Engine) sharedName() string {
	if e.cacheInBucket() {
		return "the cache " + e.CacheDir
	}
	return "the shared cache " + e.Shared
}

// sharedDigest returns the digest of the shared cache's verified copy of
// out, or "" when there is no shared cache or it has none (a store that does
// not answer is logged and taken as having none: the stage then runs, and its
// push reports the store's error). It copies nothing.
func (e *Engine) sharedDigest(ctx context.Context, sp stage.Spec, out string) string {
	sc, err := e.shared(ctx)
	if err == nil && sc == nil {
		return ""
	}
	var dig string
	if err == nil {
		dig, err = sc.Digest(ctx, sp, filepath.Base(out))
	}
	if err != nil {
		slog.Warn("cannot tell whether the shared cache holds an output", "output", filepath.Base(out), "err", err)
		return ""
	}
	return dig
}

// pull copies a finished output for out from the shared cache and returns its
// digest, or "" when the shared cache does not have it. With copy false
// nothing is copied.
func (e *Engine) pull(ctx context.Context, sp stage.Spec, out string, copy bool) (string, error) {
	dig := e.sharedDigest(ctx, sp, out)
	if dig == "" || !copy {
		return dig, nil
	}
	sc, err := e.shared(ctx)
	if err != nil {
		return "", err
	}
	got, err := sc.Pull(ctx, sp, out)
	if err != nil {
		return "", fmt.Errorf("pulling from the shared cache: %w", err)
	}
	return got, nil
}

// sharedUnusable turns a step whose shared copy could not be copied here
// (it does not verify: a damaged object in a bucket, or it went away) into
// one to build, saying why.
func (x *executor) sharedUnusable(s *step, err error) {
	slog.Warn("the shared copy is not used; building the stage here", "stage", s.st.Name, "err", err)
	s.Cached, s.source, s.digest = false, missing, ""
	s.Reasons = append(why(s.prev, s.st.Spec, s.params, s.inputs), "its copy in "+x.sharedName()+" is unusable: "+err.Error())
}

// push copies a verified output into the shared cache unless a copy that
// verifies is there already.
func (e *Engine) push(ctx context.Context, sp stage.Spec, out string) error {
	sc, err := e.shared(ctx)
	if err != nil || sc == nil {
		return err
	}
	if err := sc.Push(ctx, sp, out); err != nil {
		return fmt.Errorf("pushing to the shared cache: %w", err)
	}
	return nil
}

// publishShared makes dst a verified copy of src (a push into the shared
// cache, or a pull from it into the local one), atomically: a copy is made
// under a temporary name and renamed to dst. If dst verifies (before, or
// because another machine won the race), the push succeeds and only this
// push's temporary is removed. A dst that does not verify is renamed aside.
func publishShared(sp stage.Spec, src, dst string) error {
	if outputDigest(sp, dst) != "" {
		return nil
	}
	removeStaleShared(dst, time.Now())
	tmp, err := copyToTemp(src, dst)
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, filepath.Dir(dst), err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	for range pushTries {
		err = os.Rename(tmp, dst)
		if err == nil {
			return nil
		}
		if outputDigest(sp, dst) != "" {
			return nil // another machine published a copy that verifies
		}
		if _, statErr := os.Lstat(dst); statErr != nil {
			continue // gone meanwhile: try again
		}
		if err := setAside(dst); err != nil {
			return err
		}
	}
	if outputDigest(sp, dst) != "" {
		return nil
	}
	return fmt.Errorf("publishing %s: %w", dst, err)
}

// setAside renames an unverifiable dst to a unique hidden name beside it, so
// that a reader with files open keeps them.
func setAside(dst string) error {
	var err error
	for range pushTries {
		aside := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".%s%s%d%d", filepath.Base(dst), asideInfix, os.Getpid(), time.Now().UnixNano()))
		if _, statErr := os.Lstat(aside); statErr == nil {
			continue
		}
		if err = os.Rename(dst, aside); err == nil {
			slog.Warn("a copy that does not verify was set aside", "path", dst, "aside", aside)
			return nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil // another process moved it
		}
	}
	return fmt.Errorf("setting aside the damaged %s: %w", dst, err)
}

// isSharedTemp reports whether name is a temporary or set-aside copy made for
// dst by this package: "."+base+".tmp-<digits>" or "."+base+".aside-<digits>".
func isSharedTemp(name, dst string) bool {
	if atomicfile.IsTempOf(name, dst) {
		return true
	}
	rest, ok := strings.CutPrefix(name, "."+filepath.Base(dst)+asideInfix)
	if !ok || rest == "" {
		return false
	}
	return strings.Trim(rest, "0123456789") == ""
}

// removeStaleShared removes dst's temporaries and set-aside copies older than
// StaleAfter, holding a lock beside dst so that two cleaners on one machine
// do not race (issue 19, defect 16a for the engine's own temporaries).
func removeStaleShared(dst string, now time.Time) {
	l, err := filelock.TryAcquire(filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".clean.lock"))
	if err != nil {
		return // another process is cleaning, or the directory is not writable
	}
	defer l.Unlock()
	entries, err := os.ReadDir(filepath.Dir(dst))
	if err != nil {
		return
	}
	for _, ent := range entries {
		if !isSharedTemp(ent.Name(), dst) {
			continue
		}
		info, err := ent.Info()
		if err != nil || now.Sub(info.ModTime()) < StaleAfter {
			continue
		}
		p := filepath.Join(filepath.Dir(dst), ent.Name())
		if err := os.RemoveAll(p); err != nil {
			slog.Warn("shared cache: stale temporary not removed", "path", p, "err", err)
			continue
		}
		slog.Info("shared cache: removed a temporary left by a killed run", "path", p)
	}
}

// copyToTemp copies the regular files of src into a new temporary sibling of
// dst (named as atomicfile.TempPrefix says) and returns its path. Files are
// copied, not hard-linked: a later change to one copy must never reach the
// other. Only regular files are copied (no links), and not the stat cache,
// which describes the source's files.
func copyToTemp(src, dst string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), atomicfile.TempPrefix(dst)+"*")
	if err != nil {
		return "", err
	}
	err = copyFiles(src, tmp)
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return tmp, nil
}

// copyFiles copies the regular files of src into dir, at the same relative
// paths.
func copyFiles(src, dir string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			return fmt.Errorf("%s: %q is not inside it", src, path)
		}
		target := filepath.Join(dir, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular() || rel == artifact.StatCacheName:
			return nil
		default:
			return filehash.CopyFile(path, target)
		}
	})
}
