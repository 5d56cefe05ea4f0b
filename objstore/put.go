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
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/filehash"
)

// shaMeta is the user metadata key holding an object's sha256, so that a
// rerun can tell a finished upload from a stale one without reading it.
const shaMeta = "sha256"

// Put publishes the local artifact directory dir under u: it verifies dir
// against its manifest, uploads every file (in parallel; files larger than
// PartSize as multipart uploads, resumed part by part after an interruption),
// and writes artifact.json last, the commit point. If u already holds the
// same artifact (same digest) its manifest is left as it is, so concurrent
// publishers both succeed, but each of its files is checked (size and the
// sha256 recorded at upload, one HEAD each) and a missing or changed one is
// uploaded again: a push repairs what was deleted or overwritten behind the
// store's back. A different artifact there is an error (ErrOtherArtifact).
func (s *Store) Put(ctx context.Context, dir string, u URL) (artifact.Manifest, error) {
	return s.Repair(ctx, dir, u, nil)
}

// ErrOtherArtifact means a Put found another committed artifact under the
// prefix: a published artifact is never written over.
var ErrOtherArtifact = errors.New("it holds another artifact")

// Repair is Put that also uploads again the files named in damaged (artifact
// paths, from DamagedFiles of a failed Get) whatever the store's metadata says
// of them: an object whose bytes rotted keeps the size and sha256 recorded at
// upload, so only a download finds it.
func (s *Store) Repair(ctx context.Context, dir string, u URL, damaged []string) (artifact.Manifest, error) {
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
	there, err := s.sameThere(ctx, u, m)
	if err != nil {
		return m, err
	}
	modes := map[string]putMode{}
	for _, p := range damaged {
		modes[p] = putForce
	}
	files := m.Files
	err = parallel(ctx, s.Workers, len(files), func(ctx context.Context, i int) error {
		f := files[i]
		mode := putNew
		switch {
		case there && modes[f.Path] == putForce:
			mode = putForce
		case there:
			mode = putRepair
		}
		return s.putFile(ctx, u, u.Key(f.Path), filepath.Join(dir, filepath.FromSlash(f.Path)), f, mode)
	})
	if err != nil || there {
		return m, err // the manifest there is the commit point already
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
		return false, fmt.Errorf("object store: put %s: %w (%s, not %s); publish under a new prefix", u, ErrOtherArtifact, have.Digest(), m.Digest())
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

// PutFile uploads the local file path as the one object u names (its
// prefix is the key), for outputs that are a single file rather than an
// artifact (checkpoint export -o s3://bucket/model.safetensors): one PUT, or
// a resumable multipart upload for a large file, so the object appears only
// complete. Its sha256 goes into the object's metadata; an object already
// there with the same size and sha256 is left as it is.
func (s *Store) PutFile(ctx context.Context, path string, u URL) error {
	if u.Prefix == "" {
		return fmt.Errorf("object store: put %s: name an object, s3://bucket/key", u)
	}
	sum, size, err := filehash.Sum(path)
	if err != nil {
		return fmt.Errorf("object store: put %s: %w", path, err)
	}
	if size > MaxFileSize {
		return fmt.Errorf("object store: put %s: %d bytes, more than %d", path, size, MaxFileSize)
	}
	f := artifact.File{Path: u.Prefix, Size: size, SHA256: sum}
	return s.putFile(ctx, URL{Bucket: u.Bucket}, u.Prefix, path, f, putNew)
}

// putMode says how putFile treats an object already at its key.
type putMode int

const (
	putNew    putMode = iota // keep one that matches (a resumed or concurrent publish)
	putRepair                // the same, under a committed manifest: an upload is a repair
	putForce                 // upload whatever is there (a download found it damaged)
)

// putFile uploads the local file path as key unless, with a mode other than
// putForce, an object with f's size and sha256 is already there. A repair
// (any upload under a committed manifest) is logged.
func (s *Store) putFile(ctx context.Context, u URL, key, path string, f artifact.File, mode putMode) error {
	if mode != putForce {
		if ok, err := s.objectMatches(ctx, u, key, f); ok || err != nil {
			return err
		}
	}
	if err := s.upload(ctx, u, key, path, f); err != nil {
		return err
	}
	if mode != putNew {
		s.Log.Warn("object store: repaired a missing or damaged object of a published artifact", "object", "s3://"+u.Bucket+"/"+key)
	}
	return nil
}

// upload sends the local file path as key: one PUT, or a multipart upload.
func (s *Store) upload(ctx context.Context, u URL, key, path string, f artifact.File) error {
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
		ContentLength: aws.Int64(f.Size), Metadata: map[string]string{shaMeta: f.SHA256}}, unsignedBody)
	if err != nil {
		return s.fail(u, "put", key, err)
	}
	s.hook(key, 0)
	return nil
}

// unsignedBody sends a data file's bytes as UNSIGNED-PAYLOAD: the request
// (headers, the sha256 metadata) is still signed, but the SDK does not hash
// the body first, a full pass over every file that a plain-HTTP endpoint
// would otherwise cost on top of the server's own checks. Integrity does not
// rest on it: every reader verifies each file's size and sha256 against the
// manifest (Get), which is sent signed.
var unsignedBody = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

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
			Body: io.NewSectionReader(fh, off, sec.Size()), ContentLength: aws.Int64(sec.Size())}, unsignedBody)
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

// complete finishes the upload; if it fails because another publisher
// completed or aborted the same upload first (NoSuchUpload, or InvalidPart
// when the other resumed this upload and completed it), the object it left is
// checked instead: a matching object is success.
func (s *Store) complete(ctx context.Context, u URL, key, id string, etags []string, f artifact.File) error {
	parts := make([]types.CompletedPart, len(etags))
	for i, e := range etags {
		parts[i] = types.CompletedPart{ETag: aws.String(e), PartNumber: aws.Int32(int32(i + 1))}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &u.Bucket, Key: &key, UploadId: &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		if ok, herr := s.objectMatches(ctx, u, key, f); ok && herr == nil {
			return nil
		}
	}
	if err != nil {
		return s.fail(u, "complete upload", key, err)
	}
	s.abortStale(ctx, u, key)
	return nil
}

// maxResumeCandidates bounds how many unfinished uploads of one key openUpload
// examines (one ListParts each).
const maxResumeCandidates = 16

// openUpload finds the unfinished multipart upload of key holding the most
// parts (the newest among equals) and the parts it holds, or starts one
// (always, when fresh). The others are aborted once the file is complete
// (abortStale).
func (s *Store) openUpload(ctx context.Context, u URL, key string, f artifact.File, fresh bool) (string, map[int32]types.Part, error) {
	if fresh {
		return s.createUpload(ctx, u, key, f)
	}
	mine, err := s.uploadsOf(ctx, u, key)
	if err != nil {
		return "", nil, err
	}
	slices.SortFunc(mine, func(a, b types.MultipartUpload) int { return aws.ToTime(b.Initiated).Compare(aws.ToTime(a.Initiated)) })
	best, bestParts := "", map[int32]types.Part(nil)
	for _, up := range mine[:min(len(mine), maxResumeCandidates)] {
		have, err := s.listParts(ctx, u, key, *up.UploadId)
		if err == nil && (best == "" || len(have) > len(bestParts)) {
			best, bestParts = *up.UploadId, have
		}
	}
	if best != "" {
		s.Log.Debug("resuming multipart upload", "key", key, "parts", len(bestParts))
		return best, bestParts, nil
	}
	return s.createUpload(ctx, u, key, f)
}

// uploadsOf lists the unfinished multipart uploads of exactly key.
func (s *Store) uploadsOf(ctx context.Context, u URL, key string) ([]types.MultipartUpload, error) {
	ups, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &u.Bucket, Prefix: &key})
	if err != nil {
		return nil, s.fail(u, "list uploads", key, err)
	}
	var mine []types.MultipartUpload
	for _, up := range ups.Uploads {
		if aws.ToString(up.Key) == key && up.UploadId != nil {
			mine = append(mine, up)
		}
	}
	return mine, nil
}

// abortStale aborts the unfinished uploads of key left by killed or raced
// publishers, once the object is complete: they would otherwise keep their
// parts (and their cost) until a bucket lifecycle rule removes them. A
// publisher still sending to one of them finds the object complete and
// succeeds (putFile). Failures are logged: the object is fine.
func (s *Store) abortStale(ctx context.Context, u URL, key string) {
	stale, err := s.uploadsOf(ctx, u, key)
	if err != nil {
		s.Log.Debug("stale multipart uploads not listed", "key", key, "err", err)
		return
	}
	for _, up := range stale {
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.Bucket, Key: &key, UploadId: up.UploadId})
		if err != nil && !isNotFound(err) {
			s.Log.Debug("stale multipart upload not aborted", "key", key, "err", s.fail(u, "abort upload", key, err))
			continue
		}
		s.Log.Debug("aborted a stale multipart upload", "key", key, "initiated", aws.ToTime(up.Initiated))
	}
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
