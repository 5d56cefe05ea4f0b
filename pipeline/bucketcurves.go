package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// copyCurve downloads f of the artifact at u, checks it against the
// manifest, and publishes out (manifest bytes raw and the curve) by renaming
// a temporary directory of dir over it.
func (b *BucketCache) copyCurve(ctx context.Context, u objstore.URL, dir, out string, raw []byte, f artifact.File) error {
	fu, err := u.Join(f.Path)
	if err != nil {
		return err
	}
	objs, err := b.store.Objects(ctx, fu)
	if err != nil {
		return err
	}
	if len(objs) != 1 || objs[0].Key != fu.Prefix || objs[0].Size != f.Size {
		return fmt.Errorf("%s: the store's object does not match the manifest (%d bytes listed)", fu, f.Size)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	got, err := b.store.FetchObject(ctx, fu.Bucket, objs[0], filepath.Join(tmp, "objects"))
	if err != nil {
		return err
	}
	pub := filepath.Join(tmp, "curve")
	if err := os.Mkdir(pub, 0o755); err != nil {
		return err
	}
	if err := copyChecked(got, filepath.Join(pub, f.Path), f); err != nil {
		return fmt.Errorf("%s: %w", fu, err)
	}
	if err := os.WriteFile(filepath.Join(pub, artifact.ManifestName), raw, 0o644); err != nil {
		return err
	}
	old := filepath.Join(tmp, "old")
	if err := os.Rename(out, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Rename(pub, out)
}

// copyChecked copies src to dst if its size and sha256 are f's.
func copyChecked(src, dst string, f artifact.File) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fh, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(fh, h), io.LimitReader(in, f.Size+1))
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != f.Size || !strings.EqualFold(sum, strings.TrimPrefix(f.SHA256, "sha256:")) {
		return fmt.Errorf("damaged: the manifest lists %d bytes, sha256 %s; the store has %d bytes, sha256 %s", f.Size, f.SHA256, n, sum)
	}
	return nil
}
