package objstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/filelock"
)

// Open connects to the store the environment configures (ConfigFromEnv).
func Open(ctx context.Context) (*Store, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	return New(ctx, cfg)
}

// CacheDir is the local directory of the verified cache under root that
// holds the artifact of digest ("sha256:<hex>"): root/artifacts/sha256-<hex>.
// The key is the manifest's digest, never the URL, so an artifact fetched
// from two prefixes (or built here and published) is kept once, and a prefix
// whose artifact changed is fetched again.
func CacheDir(root, digest string) (string, error) {
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("object store cache: digest %q: want sha256:<64 hex digits>", digest)
	}
	return filepath.Join(root, "artifacts", "sha256-"+hex), nil
}

// MirrorDir is the local directory under root that stands for the prefix u,
// root/s3/<bucket>/<prefix> (the layout of the pipeline's local mirror): a
// stage writing to u builds its output there before it is published.
func MirrorDir(root string, u URL) (string, error) {
	rel := filepath.Join("s3", u.Bucket, filepath.FromSlash(u.Prefix))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s: the prefix does not name a local directory", u)
	}
	return filepath.Join(root, rel), nil
}

// Fetch makes the artifact under u available in the local verified cache
// under root (CacheDir of its manifest's digest) and returns that directory.
// A copy already there is verified (through its stat cache) and reused; else
// it is downloaded with Get, which checks every file's sha256 before the
// directory appears. Concurrent fetches of one artifact, in this process or
// others, download it once: they take the cache entry's lock.
func (s *Store) Fetch(ctx context.Context, u URL, root string) (string, artifact.Manifest, error) {
	m, _, err := s.Manifest(ctx, u)
	if err != nil {
		return "", m, err
	}
	dir, err := CacheDir(root, m.Digest())
	if err != nil {
		return "", m, err
	}
	if cached(dir, m) {
		return dir, m, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", m, fmt.Errorf("object store cache: %w", err)
	}
	lock, err := filelock.Acquire(ctx, artifact.LockPath(dir), func() {
		s.Log.Info("waiting for another process fetching the same artifact", "url", u.String(), "dir", dir)
	})
	if err != nil {
		return "", m, fmt.Errorf("object store cache %s: %w", dir, err)
	}
	defer lock.Unlock()
	if cached(dir, m) {
		return dir, m, nil
	}
	s.Log.Info("fetching artifact into the local cache", "url", u.String(), "digest", m.Digest(), "dir", dir)
	got, err := s.Get(ctx, u, dir)
	if err != nil {
		return "", m, err
	}
	if got.Digest() != m.Digest() {
		return "", m, fmt.Errorf("object store: %s changed while it was fetched (%s, then %s); retry", u, m.Digest(), got.Digest())
	}
	return dir, got, nil
}

// cached reports whether dir holds m's artifact, verified.
func cached(dir string, m artifact.Manifest) bool {
	have, err := artifact.Read(dir, "")
	return err == nil && have.Digest() == m.Digest() && artifact.Verify(dir, have) == nil
}

// Adopt moves the local artifact dir (just published from it) into the cache
// under root, where a later Fetch of it finds it, unless the cache has it
// already; then dir is removed. Either way dir is gone afterwards.
func Adopt(dir, root string, m artifact.Manifest) error {
	to, err := CacheDir(root, m.Digest())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("object store cache: %w", err)
	}
	lock, err := filelock.Acquire(context.Background(), artifact.LockPath(to), nil)
	if err != nil {
		return fmt.Errorf("object store cache %s: %w", to, err)
	}
	defer lock.Unlock()
	if cached(to, m) {
		return os.RemoveAll(dir)
	}
	if err := artifact.CheckReplaceable(to); err != nil {
		return fmt.Errorf("object store cache: %w", err)
	}
	if err := os.RemoveAll(to); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("object store cache: %w", err)
	}
	if err := os.Rename(dir, to); err != nil {
		return fmt.Errorf("object store cache: keep %s as %s: %w", dir, to, err)
	}
	return nil
}
