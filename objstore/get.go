package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// Manifest reads and checks the manifest under u (artifact.ParseManifest),
// returning it and its raw bytes; ErrNoArtifact when there is none.
func (s *Store) Manifest(ctx context.Context, u URL) (artifact.Manifest, []byte, error) {
	key := u.Key(artifact.ManifestName)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &u.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return artifact.Manifest{}, nil, &Error{URL: u.String(), Op: "read", msg: fmt.Sprintf("object store: %s: %v", u, ErrNoArtifact), err: ErrNoArtifact}
		}
		return artifact.Manifest{}, nil, s.fail(u, "read manifest", key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, artifact.MaxManifestBytes+1))
	if err != nil {
		return artifact.Manifest{}, nil, s.fail(u, "read manifest", key, err)
	}
	m, err := artifact.ParseManifest(raw)
	if err != nil {
		return m, nil, fmt.Errorf("object store: s3://%s/%s: %w", u.Bucket, key, err)
	}
	for _, f := range m.Files {
		if f.Size < 0 || f.Size > MaxFileSize {
			return m, nil, fmt.Errorf("object store: s3://%s/%s: %s: size %d outside [0, %d]", u.Bucket, key, f.Path, f.Size, MaxFileSize)
		}
		if f.Path == artifact.ManifestName {
			return m, nil, fmt.Errorf("object store: s3://%s/%s: lists itself", u.Bucket, key)
		}
	}
	return m, raw, nil
}

// Exists reports whether u holds a committed artifact whose every file is
// there with the size and sha256 its manifest gives (the sha256 recorded at
// upload; Get re-hashes what it downloads).
func (s *Store) Exists(ctx context.Context, u URL) (artifact.Manifest, bool, error) {
	m, _, err := s.Manifest(ctx, u)
	if errors.Is(err, ErrNoArtifact) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	missing := make([]bool, len(m.Files))
	err = parallel(ctx, s.Workers, len(m.Files), func(ctx context.Context, i int) error {
		ok, err := s.objectMatches(ctx, u, u.Key(m.Files[i].Path), m.Files[i])
		missing[i] = !ok
		return err
	})
	if err != nil {
		return m, false, err
	}
	for i, miss := range missing {
		if miss {
			s.Log.Warn("artifact in the object store is incomplete", "url", u.String(), "file", m.Files[i].Path)
			return m, false, nil
		}
	}
	return m, true, nil
}

// Get downloads the artifact under u into the local directory dir, which must
// not exist (or be empty, or already hold the same artifact, which is then
// verified and kept). Files come down in parallel (large ones as parallel
// ranged reads) into a staging directory beside dir whose name derives from
// the digest, so an interrupted Get resumes with the files already verified;
// every file is checked against the manifest's size and sha256, and the
// staging directory is renamed to dir only when all are.
func (s *Store) Get(ctx context.Context, u URL, dir string) (artifact.Manifest, error) {
	m, raw, err := s.Manifest(ctx, u)
	if err != nil {
		return m, err
	}
	if have, err := artifact.Read(dir, ""); err == nil && have.Digest() == m.Digest() {
		if err := artifact.Verify(dir, have); err == nil {
			return have, nil
		}
	}
	if err := artifact.CheckReplaceable(dir); err != nil {
		return m, fmt.Errorf("object store: get %s into %s: %w", u, dir, err)
	}
	stage := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".get-"+m.Digest()[len("sha256:"):][:16])
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return m, fmt.Errorf("object store: get %s: %w", u, err)
	}
	root, err := os.OpenRoot(stage)
	if err != nil {
		return m, fmt.Errorf("object store: get %s: %w", u, err)
	}
	defer root.Close()
	if err := s.getFiles(ctx, u, root, m.Files); err != nil {
		return m, err
	}
	if err := root.WriteFile(artifact.ManifestName, raw, 0o644); err != nil {
		return m, fmt.Errorf("object store: get %s: %s: %w", u, stage, err)
	}
	// Every file was hashed on the way in: spare the first Verify a re-read.
	artifact.RecordVerified(stage, m)
	return m, install(stage, dir)
}

// getFiles downloads files into root, in parallel. A damaged object does not
// stop the others: every one found is reported (errors.Join of
// *DamagedError), so that one repair fixes them all.
func (s *Store) getFiles(ctx context.Context, u URL, root *os.Root, files []artifact.File) error {
	var mu sync.Mutex
	var damaged []error
	err := parallel(ctx, s.Workers, len(files), func(ctx context.Context, i int) error {
		err := s.getFile(ctx, u, root, files[i])
		var d *DamagedError
		if errors.As(err, &d) {
			mu.Lock()
			damaged = append(damaged, err)
			mu.Unlock()
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return errors.Join(damaged...)
}

// install renames the verified staging directory to dir, replacing an empty
// directory or an older artifact (CheckReplaceable was asked before).
func install(stage, dir string) error {
	if err := os.Rename(stage, dir); err == nil {
		return nil
	}
	old := dir + ".old-" + filepath.Base(stage)
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("object store: install %s: %w", dir, err)
	}
	if err := os.Rename(stage, dir); err != nil {
		_ = os.Rename(old, dir)
		return fmt.Errorf("object store: install %s: %w", dir, err)
	}
	return os.RemoveAll(old)
}

// getFile downloads f unless the staging directory already has it verified.
func (s *Store) getFile(ctx context.Context, u URL, root *os.Root, f artifact.File) error {
	rel := filepath.FromSlash(f.Path)
	if ok, _ := fileMatches(root, rel, f); ok {
		return nil
	}
	if d := path.Dir(f.Path); d != "." {
		if err := root.MkdirAll(filepath.FromSlash(d), 0o755); err != nil {
			return fmt.Errorf("object store: get %s: %w", f.Path, err)
		}
	}
	part := rel + ".part"
	fh, err := root.OpenFile(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("object store: get %s: %w", f.Path, err)
	}
	key := u.Key(f.Path)
	sum, err := s.fill(ctx, u, key, fh, f.Size)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if got := damage(err, sum, f); got != "" {
		err = &DamagedError{Bucket: u.Bucket, Key: key, Path: f.Path, WantSize: f.Size, WantSHA256: f.SHA256, Got: got}
	}
	if err != nil {
		_ = root.Remove(part)
		return err
	}
	return root.Rename(part, rel)
}

// damage says what is wrong with a downloaded object (fill's error and the
// sha256 of what it wrote) if the object is not f: "missing", "another size",
// or its size and digest; "" when it is f, or the download failed otherwise.
func damage(err error, sum string, f artifact.File) string {
	switch {
	case err == nil && sum != f.SHA256:
		return fmt.Sprintf("%d bytes sha256 %s", f.Size, sum)
	case err == nil:
		return ""
	case isNotFound(err):
		return "missing"
	case errors.Is(err, errShortRange) || isCode(err, "InvalidRange") || statusOf(err) == http.StatusRequestedRangeNotSatisfiable:
		return "an object of another size"
	}
	return ""
}

// fill writes the object key (size bytes) into fh with ranged reads of
// PartSize, in parallel, and returns its sha256. Hashing runs beside the
// transfer: a goroutine hashes each part, in order, as soon as it is written
// (reading it back from the page cache), so a download costs no second pass
// after the last byte arrives.
func (s *Store) fill(ctx context.Context, u URL, key string, fh *os.File, size int64) (string, error) {
	ps := s.PartSize
	n := max(1, int((size+ps-1)/ps))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	written := make([]chan struct{}, n)
	for i := range written {
		written[i] = make(chan struct{})
	}
	h := sha256.New()
	hashed := make(chan error, 1)
	go func() { hashed <- hashParts(ctx, h, fh, size, ps, written) }()
	err := parallel(ctx, s.Workers, n, func(ctx context.Context, i int) error {
		off := int64(i) * ps
		if err := s.getRange(ctx, u, key, fh, off, min(ps, size-off), size); err != nil {
			return err
		}
		close(written[i])
		return nil
	})
	if err != nil {
		cancel()
		<-hashed
		return "", err
	}
	if err := <-hashed; err != nil {
		return "", fmt.Errorf("object store: get s3://%s/%s: hashing: %w", u.Bucket, key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashParts feeds the parts of fh into h in order, each once written[i] is
// closed.
func hashParts(ctx context.Context, h io.Writer, fh *os.File, size, ps int64, written []chan struct{}) error {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	for i, ch := range written {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		off := int64(i) * ps
		if _, err := io.CopyBuffer(h, io.NewSectionReader(fh, off, min(ps, size-off)), *buf); err != nil {
			return err
		}
	}
	return nil
}

// bufPool holds the 1 MiB buffers transfers copy through (fewer system calls
// than io.Copy's 32 KiB).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// getRange writes bytes [off, off+want) of the object key (size bytes in
// all) into fh at off.
func (s *Store) getRange(ctx context.Context, u URL, key string, fh *os.File, off, want, size int64) error {
	in := &s3.GetObjectInput{Bucket: &u.Bucket, Key: &key}
	if size > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+want-1))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return s.fail(u, "get", key, err)
	}
	defer out.Body.Close()
	got, err := copyAt(fh, off, io.LimitReader(out.Body, want+1))
	if err != nil {
		return s.fail(u, "get", key, err)
	}
	if got != want || (size > 0 && aws.ToInt64(out.ContentLength) != want) || !rangeOf(aws.ToString(out.ContentRange), size) {
		return fmt.Errorf("object store: get s3://%s/%s: bytes %d-: got %d bytes, want %d: %w", u.Bucket, key, off, got, want, errShortRange)
	}
	return nil
}

// rangeOf reports whether a Content-Range header ("bytes 0-99/200") gives
// the object's total size as size; an absent header, or one without the
// total ("*"), does not say otherwise.
func rangeOf(header string, size int64) bool {
	_, total, ok := strings.Cut(header, "/")
	if !ok || total == "*" {
		return true
	}
	n, err := strconv.ParseInt(total, 10, 64)
	return err == nil && n == size
}

// copyAt copies r into fh from off on, through a pooled 1 MiB buffer filled
// before each write.
func copyAt(fh *os.File, off int64, r io.Reader) (int64, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var n int64
	for {
		k, err := io.ReadFull(r, *buf)
		if k > 0 {
			if _, werr := fh.WriteAt((*buf)[:k], off+n); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return n, nil
		case err != nil:
			return n, err
		}
	}
}

// fileMatches hashes rel; it reports whether size and sha256 are f's, and
// what it found.
func fileMatches(root *os.Root, rel string, f artifact.File) (bool, string) {
	fh, err := root.Open(rel)
	if err != nil {
		return false, err.Error()
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, f.Size+1))
	if err != nil {
		return false, err.Error()
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return n == f.Size && bytes.Equal([]byte(sum), []byte(f.SHA256)), fmt.Sprintf("%d bytes sha256 %s", n, sum)
}
