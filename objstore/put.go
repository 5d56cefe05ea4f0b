package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mdlm-go/mdlm/artifact"
)

// shaMeta is the user metadata key holding an object's sha256, so that a
// rerun can tell a finished upload from a stale one without reading it.
const shaMeta = "sha256"

// Put publishes the local artifact directory dir under u: it verifies dir
// against its manifest, uploads every file (in parallel; files larger than
// PartSize as multipart uploads, resumed part by part after an interruption),
// and writes artifact.json last, the commit point. If u already holds the
// same artifact (same digest) Put returns it untouched, so concurrent
// publishers both succeed; a different artifact there is an error.
func (s *Store) Put(ctx context.Context, dir string, u URL) (artifact.Manifest, error) {
	m, err := artifact.Read(dir, "")
	if err != nil {
		return m, fmt.Errorf("object store: put %s: %w", dir, err)
	}
	if err := artifact.Verify(dir, m); err != nil {
		return m, fmt.Errorf("object store: put %s: %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, artifact.ManifestName))
	if err != nil {
		return m, fmt.Errorf("object store: put %s: %w", dir, err)
	}
	if done, err := s.sameThere(ctx, u, m); done || err != nil {
		return m, err
	}
	files := m.Files
	err = parallel(ctx, s.Workers, len(files), func(ctx context.Context, i int) error {
		return s.putFile(ctx, dir, u, files[i])
	})
	if err != nil {
		return m, err
	}
	return m, s.commit(ctx, u, m, raw)
}

// sameThere reports whether u already holds m's artifact; a different one is
// an error.
func (s *Store) sameThere(ctx context.Context, u URL, m artifact.Manifest) (bool, error) {
	have, _, err := s.Manifest(ctx, u)
	switch {
	case errors.Is(err, ErrNoArtifact):
		return false, nil
	case err != nil:
		return false, err
	case have.Digest() != m.Digest():
		return false, fmt.Errorf("object store: put %s: it holds another artifact (%s, not %s); publish under a new prefix", u, have.Digest(), m.Digest())
	}
	return true, nil
}

// commit writes the manifest, conditionally where the store supports it: a
// concurrent publisher that committed first wins if its digest is the same.
func (s *Store) commit(ctx context.Context, u URL, m artifact.Manifest, raw []byte) error {
	key := u.Key(artifact.ManifestName)
	in := &s3.PutObjectInput{Bucket: &u.Bucket, Key: &key, Body: bytes.NewReader(raw),
		ContentLength: aws.Int64(int64(len(raw))), ContentType: aws.String("application/json"), IfNoneMatch: aws.String("*")}
	_, err := s.client.PutObject(ctx, in)
	if isCode(err, "NotImplemented") {
		in.IfNoneMatch, in.Body = nil, bytes.NewReader(raw)
		_, err = s.client.PutObject(ctx, in)
	}
	if isCode(err, "PreconditionFailed") || statusOf(err) == 412 {
		done, err := s.sameThere(ctx, u, m)
		if err == nil && !done {
			return fmt.Errorf("object store: put %s: the manifest vanished during a concurrent publish; retry", u)
		}
		return err
	}
	return s.fail(u, "commit", key, err)
}

// putFile uploads one file unless an object with its size and sha256 is
// already there (a resumed publish).
func (s *Store) putFile(ctx context.Context, dir string, u URL, f artifact.File) error {
	key := u.Key(f.Path)
	if ok, err := s.objectMatches(ctx, u, key, f); ok || err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.FromSlash(f.Path))
	if f.Size <= s.PartSize {
		return s.putSmall(ctx, u, key, path, f)
	}
	err := s.putMultipart(ctx, u, key, path, f, false)
	if err != nil && (isCode(err, "NoSuchUpload") || isCode(err, "InvalidPart")) {
		// A concurrent publisher completed (or rewrote parts of) the upload
		// this one joined: its object is fine if it matches, else upload
		// afresh under a new upload id of our own.
		if ok, herr := s.objectMatches(ctx, u, key, f); ok || herr != nil {
			return herr
		}
		s.Log.Debug("multipart upload raced with another publisher, starting a fresh one", "key", key)
		err = s.putMultipart(ctx, u, key, path, f, true)
	}
	return err
}

// objectMatches reports whether key exists with f's size and sha256.
func (s *Store) objectMatches(ctx context.Context, u URL, key string, f artifact.File) (bool, error) {
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, s.fail(u, "head", key, err)
	}
	return aws.ToInt64(h.ContentLength) == f.Size && h.Metadata[shaMeta] == f.SHA256, nil
}

func (s *Store) putSmall(ctx context.Context, u URL, key, path string, f artifact.File) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("object store: put %s: %w", path, err)
	}
	defer fh.Close()
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &u.Bucket, Key: &key, Body: io.NewSectionReader(fh, 0, f.Size),
		ContentLength: aws.Int64(f.Size), Metadata: map[string]string{shaMeta: f.SHA256}})
	if err != nil {
		return s.fail(u, "put", key, err)
	}
	s.hook(key, 0)
	return nil
}

func (s *Store) hook(key string, part int32) {
	if s.afterPart != nil {
		s.afterPart(key, part)
	}
}

// partSize is the part size for a file of size n: PartSize, grown so that no
// upload needs more than MaxParts parts.
func (s *Store) partSize(n int64) int64 {
	ps := s.PartSize
	for n/ps >= MaxParts {
		ps *= 2
	}
	return ps
}

// putMultipart uploads a large file in parts, in parallel, reusing an
// unfinished upload of the same key (unless fresh) and every part of it whose
// size and MD5 (the part's ETag) match the file.
func (s *Store) putMultipart(ctx context.Context, u URL, key, path string, f artifact.File, fresh bool) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("object store: put %s: %w", path, err)
	}
	defer fh.Close()
	id, have, err := s.openUpload(ctx, u, key, f, fresh)
	if err != nil {
		return err
	}
	ps := s.partSize(f.Size)
	n := int((f.Size + ps - 1) / ps)
	etags := make([]string, n)
	err = parallel(ctx, s.Workers, n, func(ctx context.Context, i int) error {
		off := int64(i) * ps
		sec := io.NewSectionReader(fh, off, min(ps, f.Size-off))
		num := int32(i + 1)
		if p, ok := have[num]; ok && aws.ToInt64(p.Size) == sec.Size() {
			if sum, err := md5Of(sec); err == nil && strings.Trim(aws.ToString(p.ETag), `"`) == sum {
				etags[i] = aws.ToString(p.ETag)
				return nil
			}
		}
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.Bucket, Key: &key, UploadId: &id, PartNumber: &num,
			Body: io.NewSectionReader(fh, off, sec.Size()), ContentLength: aws.Int64(sec.Size())})
		if err != nil {
			return s.fail(u, fmt.Sprintf("upload part %d of", num), key, err)
		}
		etags[i] = aws.ToString(out.ETag)
		s.hook(key, num)
		return nil
	})
	if err != nil {
		return err
	}
	return s.complete(ctx, u, key, id, etags, f)
}

func md5Of(r io.Reader) (string, error) {
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// complete finishes the upload; if another publisher completed the same
// upload first, the object it left is checked instead.
func (s *Store) complete(ctx context.Context, u URL, key, id string, etags []string, f artifact.File) error {
	parts := make([]types.CompletedPart, len(etags))
	for i, e := range etags {
		parts[i] = types.CompletedPart{ETag: aws.String(e), PartNumber: aws.Int32(int32(i + 1))}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.Bucket, Key: &key, UploadId: &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil && isNotFound(err) {
		if ok, herr := s.objectMatches(ctx, u, key, f); ok && herr == nil {
			return nil
		}
	}
	return s.fail(u, "complete upload", key, err)
}

// openUpload finds an unfinished multipart upload of key (the newest) and
// the parts it holds, or starts one (always, when fresh).
func (s *Store) openUpload(ctx context.Context, u URL, key string, f artifact.File, fresh bool) (string, map[int32]types.Part, error) {
	if fresh {
		return s.createUpload(ctx, u, key, f)
	}
	ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &u.Bucket, Prefix: &key})
	if err != nil {
		return "", nil, s.fail(u, "list uploads", key, err)
	}
	var mine []types.MultipartUpload
	for _, up := range ups.Uploads {
		if aws.ToString(up.Key) == key && up.UploadId != nil {
			mine = append(mine, up)
		}
	}
	slices.SortFunc(mine, func(a, b types.MultipartUpload) int { return aws.ToTime(b.Initiated).Compare(aws.ToTime(a.Initiated)) })
	for _, up := range mine {
		have, err := s.listParts(ctx, u, key, *up.UploadId)
		if err == nil {
			s.Log.Debug("resuming multipart upload", "key", key, "parts", len(have))
			return *up.UploadId, have, nil
		}
	}
	return s.createUpload(ctx, u, key, f)
}

func (s *Store) createUpload(ctx context.Context, u URL, key string, f artifact.File) (string, map[int32]types.Part, error) {
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &u.Bucket, Key: &key,
		Metadata: map[string]string{shaMeta: f.SHA256}})
	if err != nil {
		return "", nil, s.fail(u, "start upload", key, err)
	}
	return aws.ToString(out.UploadId), nil, nil
}

func (s *Store) listParts(ctx context.Context, u URL, key, id string) (map[int32]types.Part, error) {
	have := map[int32]types.Part{}
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: &u.Bucket, Key: &key, UploadId: &id})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(u, "list parts", key, err)
		}
		for _, part := range page.Parts {
			if part.PartNumber != nil && int64(len(have)) < MaxParts {
				have[*part.PartNumber] = part
			}
		}
	}
	return have, nil
}
