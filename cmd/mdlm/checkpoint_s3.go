package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/objstore"
)

// The checkpoint commands take s3:// locations (issue 25; README "Object
// storage") the way stages do through stage.Execute: an s3:// artifact to
// read is fetched once into the local verified cache, an artifact to write is
// built in the local mirror of its prefix and published with objstore.Put
// (artifact.json last), a single file is uploaded with objstore.PutFile.

// localArtifact returns src, or for s3://bucket/prefix the local verified
// copy of the artifact there.
func localArtifact(ctx context.Context, log *slog.Logger, src string) (string, error) {
	if !objstore.IsURL(src) {
		return src, nil
	}
	u, err := objstore.ParseURL(src)
	if err != nil {
		return "", err
	}
	s, err := openStore(ctx, log)
	if err != nil {
		return "", err
	}
	dir, _, err := s.Fetch(ctx, u, hub.CacheRoot())
	return dir, err
}

// withArtifactOut runs build on out, or for out s3://bucket/prefix on the
// local mirror of that prefix, then publishes what it built there (a prefix
// holding another artifact is refused by Put; the same one is kept) and moves
// the local copy into the fetch cache.
func withArtifactOut(ctx context.Context, log *slog.Logger, out string, build func(out string) (artifact.Manifest, error)) (artifact.Manifest, error) {
	if !objstore.IsURL(out) {
		return build(out)
	}
	var m artifact.Manifest
	u, err := objstore.ParseURL(out)
	if err != nil {
		return m, fmt.Errorf("-o: %w", err)
	}
	s, err := openStore(ctx, log)
	if err != nil {
		return m, err
	}
	local, err := objstore.MirrorDir(hub.CacheRoot(), u)
	if err != nil {
		return m, fmt.Errorf("-o: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return m, fmt.Errorf("-o %s: local mirror: %w", out, err)
	}
	if m, err = build(local); err != nil {
		return m, err
	}
	if _, err := s.Put(ctx, local, u); err != nil {
		return m, fmt.Errorf("-o: %w (the artifact is kept in %s; rerun to resume the upload)", err, local)
	}
	log.Info("published to the object store", "url", out, "digest", m.Digest())
	if err := objstore.Adopt(local, hub.CacheRoot(), m); err != nil {
		log.Warn("published copy not moved into the object store cache", "dir", local, "err", err)
	}
	return m, nil
}

// withFileOut runs write on out, or for out s3://bucket/key on a temporary
// file that is then uploaded as that object and removed.
func withFileOut(ctx context.Context, log *slog.Logger, out string, write func(dst string) error) error {
	if !objstore.IsURL(out) {
		return write(out)
	}
	u, err := objstore.ParseURL(out)
	if err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	s, err := openStore(ctx, log)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(hub.CacheRoot(), ".upload-*")
	if err != nil {
		if err := os.MkdirAll(hub.CacheRoot(), 0o755); err != nil {
			return fmt.Errorf("-o %s: %w", out, err)
		}
		if tmp, err = os.MkdirTemp(hub.CacheRoot(), ".upload-*"); err != nil {
			return fmt.Errorf("-o %s: %w", out, err)
		}
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, "file"+filepath.Ext(u.Prefix))
	if err := write(dst); err != nil {
		return err
	}
	if err := s.PutFile(ctx, dst, u); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	log.Info("uploaded to the object store", "url", out)
	return nil
}

// openStore connects to the store the AWS environment configures.
func openStore(ctx context.Context, log *slog.Logger) (*objstore.Store, error) {
	s, err := objstore.Open(ctx)
	if err != nil {
		return nil, err
	}
	s.Log = log
	return s, nil
}
