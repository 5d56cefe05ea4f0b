package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/objstore"
)

// CurvesDir is the directory of the local mirror (LocalMirror) where
// MirrorCurves keeps the training curves of checkpoints in a bucket cache.
// Its name starts with a dot, so no output name can be it and nothing that
// lists outputs sees it.
const CurvesDir = ".curves"

// curveFile is the training curve a checkpoint/v1 artifact holds
// (train.MetricsFile; pipeline does not import train).
const curveFile = "metrics.jsonl"

// MaxCurveBytes bounds one curve MirrorCurves copies.
var MaxCurveBytes int64 = 64 << 20

// MirrorCurves copies the training curve of every checkpoint in the bucket
// cache loc (names as for MirrorOutputs; nil: every output) into
// <LocalMirror>/CurvesDir/<name>/: its artifact.json and its metrics.jsonl,
// verified against that manifest, never the weights. What it writes is not an
// artifact (its other files are absent): only a reader of curves, which
// checks metrics.jsonl against the manifest (results.Runs), opens it there.
// A copy already there with the bucket's manifest is kept. It returns the
// curves directory.
func MirrorCurves(ctx context.Context, loc string, names []string, log *slog.Logger) (string, error) {
	b, mirror, names, err := mirrorSetup(ctx, loc, names)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mirror, CurvesDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache %s: curves: %w", loc, err)
	}
	for _, name := range names {
		if err := b.curveOf(ctx, dir, name); err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			log.Warn("the training curve of an output of the bucket cache is not shown", "output", name, "err", err)
		}
	}
	return dir, nil
}

// curveOf copies the curve of the output name, if it is a checkpoint with
// one, into dir/name.
func (b *BucketCache) curveOf(ctx context.Context, dir, name string) error {
	if !filepath.IsLocal(name) || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%q is not an output name", name)
	}
	u, err := b.at(name)
	if err != nil {
		return err
	}
	m, raw, err := b.store.Manifest(ctx, u)
	if errors.Is(err, objstore.ErrNoArtifact) {
		return nil
	}
	if err != nil || m.Type != artifact.CheckpointType {
		return err
	}
	f, ok := listed(m, curveFile)
	if !ok {
		return nil // a checkpoint imported, not trained: no curve
	}
	if f.Size < 0 || f.Size > MaxCurveBytes {
		return fmt.Errorf("%s: %s is %d bytes, more than the %d shown", u, curveFile, f.Size, MaxCurveBytes)
	}
	out := filepath.Join(dir, name)
	if have, err := os.ReadFile(filepath.Join(out, artifact.ManifestName)); err == nil && string(have) == string(raw) {
		return nil
	}
	return b.copyCurve(ctx, u, dir, out, raw, f)
}

// listed is the manifest's entry for path.
func listed(m artifact.Manifest, path string) (artifact.File, bool) {
	for _, f := range m.Files {
		if f.Path == path {
			return f, true
		}
	}
	return artifact.File{}, false
}

// copyCurve reads f of the artifact at u (objstore.File: its size checked
// first, its sha256 verified against the manifest) and publishes out (the
// manifest bytes raw and the curve) by renaming a temporary directory of dir
// over it.
func (b *BucketCache) copyCurve(ctx context.Context, u objstore.URL, dir, out string, raw []byte, f artifact.File) error {
	curve, err := b.readFile(ctx, u, f)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pub := filepath.Join(tmp, "curve")
	if err := os.Mkdir(pub, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pub, f.Path), curve, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pub, artifact.ManifestName), raw, 0o644); err != nil {
		return err
	}
	if err := os.Rename(out, filepath.Join(tmp, "old")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(pub, out)
}

// readFile reads the whole of f (its size bounded by the caller), verified:
// a damaged object is the *objstore.DamagedError naming it.
func (b *BucketCache) readFile(ctx context.Context, u objstore.URL, f artifact.File) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(f.Size))
	if err := b.store.CopyFile(ctx, u, f, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
