package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
)

// Stream limits: a streamed file is read in blocks of StreamBlockSize bytes,
// at most StreamBlocks of them held at once, so one open file costs at most
// StreamBlockSize*StreamBlocks bytes of memory (32 MiB).
const (
	StreamBlockSize = 8 << 20
	StreamBlocks    = 4
)

// blockGetter fetches bytes [off, off+n) of one object, pinned to the object
// it was opened on.
type blockGetter interface {
	getBlock(ctx context.Context, off, n int64) ([]byte, error)
}

// File is one file of a committed artifact read from the store by ranged GETs
// without a local copy (an io.ReaderAt and io.Reader). Its sha256 is computed
// over the bytes in file order as blocks arrive; Verify hashes what was never
// read and fails with a *DamagedError unless the file is the one its manifest
// lists. Bytes read before Verify succeeds are unverified: a caller may only
// publish what it derived from them after Verify.
type File struct {
	ctx       context.Context
	src       blockGetter
	bucket    string
	key       string
	f         artifact.File
	blockSize int64
	maxBlocks int

	mu       sync.Mutex
	blocks   map[int64][]byte // held blocks by index
	used     []int64          // held block indexes, least recently used first
	next     int64            // index of the next block to hash
	h        hash.Hash
	pos      int64 // sequential Read position
	fetched  int64 // bytes downloaded
	verified error // Verify's result, once it ran
	done     bool
}

// OpenFile opens file f of the artifact under u for streaming reads. The
// object's size is checked against the manifest first (a missing or
// other-sized object is a *DamagedError) and every later GET carries
// If-Match on the ETag seen here, so an object replaced while it is read is
// an error, never a mix of two objects' bytes.
func (s *Store) OpenFile(ctx context.Context, u URL, f artifact.File) (*File, error) {
	if f.Size < 0 || f.Size > MaxFileSize {
		return nil, fmt.Errorf("object store: %s: %s: size %d outside [0, %d]", u, f.Path, f.Size, int64(MaxFileSize))
	}
	key := u.Key(f.Path)
	damaged := func(got string) error {
		return &DamagedError{Bucket: u.Bucket, Key: key, Path: f.Path, WantSize: f.Size, WantSHA256: f.SHA256, Got: got}
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &key})
	switch {
	case err != nil && isNotFound(err):
		return nil, damaged("missing")
	case err != nil:
		return nil, s.fail(u, "open", key, err)
	case aws.ToInt64(head.ContentLength) != f.Size:
		return nil, damaged(fmt.Sprintf("an object of another size (%d bytes)", aws.ToInt64(head.ContentLength)))
	}
	src := &s3Block{s: s, u: u, key: key, etag: aws.ToString(head.ETag), size: f.Size, damaged: damaged}
	return newFile(ctx, src, u.Bucket, key, f, StreamBlockSize, StreamBlocks), nil
}

func newFile(ctx context.Context, src blockGetter, bucket, key string, f artifact.File, blockSize int64, maxBlocks int) *File {
	return &File{ctx: ctx, src: src, bucket: bucket, key: key, f: f, blockSize: blockSize,
		maxBlocks: max(1, maxBlocks), blocks: map[int64][]byte{}, h: sha256.New()}
}

// Name is the object's s3:// address.
func (r *File) Name() string { return "s3://" + r.bucket + "/" + r.key }

// Size is the file's size in bytes (the manifest's, checked against the
// object's).
func (r *File) Size() int64 { return r.f.Size }

// Fetched is how many bytes were downloaded so far.
func (r *File) Fetched() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetched
}

// ReadAt reads len(p) bytes at off (io.ReaderAt).
func (r *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", r.Name(), off)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off+int64(n) < r.f.Size {
		at := off + int64(n)
		b, err := r.block(at / r.blockSize)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[at%r.blockSize:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads sequentially from the last Read's end (io.Reader).
func (r *File) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// block returns block i, from the cache or the store; a fetched block is
// hashed at once when it is the next in file order (and the held blocks
// after it with it), else held until its turn or evicted.
func (r *File) block(i int64) ([]byte, error) {
	if b, ok := r.blocks[i]; ok {
		r.touch(i)
		return b, nil
	}
	b, err := r.fetch(i)
	if err != nil {
		return nil, err
	}
	r.hold(i, b)
	for {
		nb, ok := r.blocks[r.next]
		if !ok {
			break
		}
		r.h.Write(nb)
		r.next++
	}
	return b, nil
}

// fetch downloads block i.
func (r *File) fetch(i int64) ([]byte, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	off := i * r.blockSize
	n := min(r.blockSize, r.f.Size-off)
	b, err := r.src.getBlock(r.ctx, off, n)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, fmt.Errorf("object store: %s: bytes %d-: got %d bytes, want %d: %w", r.Name(), off, len(b), n, errShortRange)
	}
	r.fetched += n
	return b, nil
}

// hold caches block i, evicting beyond maxBlocks: blocks already hashed
// first (least recently used first), else the least recently used.
func (r *File) hold(i int64, b []byte) {
	r.blocks[i] = b
	r.used = append(r.used, i)
	for len(r.used) > r.maxBlocks {
		victim := 0
		for k, j := range r.used {
			if j < r.next {
				victim = k
				break
			}
		}
		delete(r.blocks, r.used[victim])
		r.used = append(r.used[:victim], r.used[victim+1:]...)
	}
}

// touch marks block i most recently used.
func (r *File) touch(i int64) {
	for k, j := range r.used {
		if j == i {
			r.used = append(append(r.used[:k], r.used[k+1:]...), i)
			return
		}
	}
}

// Verify hashes the bytes not hashed yet (fetching what is not held) and
// returns a *DamagedError naming the object and both digests unless the
// file's sha256 is the manifest's. It is idempotent.
func (r *File) Verify() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return r.verified
	}
	r.verified = r.finish()
	if r.verified == nil || errors.As(r.verified, new(*DamagedError)) {
		r.done = true // a transient failure may be retried
	}
	return r.verified
}

func (r *File) finish() error {
	nblocks := (r.f.Size + r.blockSize - 1) / r.blockSize
	for ; r.next < nblocks; r.next++ {
		b, ok := r.blocks[r.next]
		if !ok {
			var err error
			if b, err = r.fetch(r.next); err != nil {
				return err
			}
		}
		r.h.Write(b)
	}
	if sum := hex.EncodeToString(r.h.Sum(nil)); sum != r.f.SHA256 {
		return &DamagedError{Bucket: r.bucket, Key: r.key, Path: r.f.Path, WantSize: r.f.Size, WantSHA256: r.f.SHA256,
			Got: fmt.Sprintf("%d bytes sha256 %s", r.f.Size, sum)}
	}
	return nil
}

// Close drops the file's blocks. It does not verify: a reader that gave up
// (an error, a cancel) need not download the rest; Verify is the check.
func (r *File) Close() error {
	r.mu.Lock()
	r.blocks, r.used = map[int64][]byte{}, nil
	r.mu.Unlock()
	return nil
}

// CopyFile writes file f of the artifact under u to w as it streams
// (OpenFile) and verifies it: what w received is f only if the error is nil
// (a damaged object is the *DamagedError naming it).
func (s *Store) CopyFile(ctx context.Context, u URL, f artifact.File, w io.Writer) error {
	in, err := s.OpenFile(ctx, u, f)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = io.Copy(w, in)
	if verr := in.Verify(); verr != nil { // a damaged object, not the copy's error
		return verr
	}
	return err
}

// s3Block fetches ranges of one object with If-Match on its ETag.
type s3Block struct {
	s       *Store
	u       URL
	key     string
	etag    string
	size    int64
	damaged func(got string) error
}

func (b *s3Block) getBlock(ctx context.Context, off, n int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: &b.u.Bucket, Key: &b.key, Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))}
	if b.etag != "" {
		in.IfMatch = aws.String(b.etag)
	}
	out, err := b.s.client.GetObject(ctx, in)
	switch {
	case err != nil && isNotFound(err):
		return nil, b.damaged("missing (deleted while it was read)")
	case err != nil && (statusOf(err) == http.StatusPreconditionFailed || isCode(err, "PreconditionFailed")):
		return nil, b.damaged("another object (replaced while it was read)")
	case err != nil && (isCode(err, "InvalidRange") || statusOf(err) == http.StatusRequestedRangeNotSatisfiable):
		return nil, b.damaged("an object of another size")
	case err != nil:
		return nil, b.s.fail(b.u, "get", b.key, err)
	}
	defer out.Body.Close()
	if cr := aws.ToString(out.ContentRange); cr != "" {
		first, last, total, err := parseContentRange(cr)
		if err != nil || first != off || last != off+n-1 || (total >= 0 && total != b.size) {
			return nil, b.damaged(fmt.Sprintf("an object of another size (Content-Range %q for bytes %d-%d)", cr, off, off+n-1))
		}
	}
	buf := make([]byte, n)
	got, err := io.ReadFull(out.Body, buf)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, b.damaged(fmt.Sprintf("an object of another size (%d bytes at %d, want %d)", got, off, n))
		}
		return nil, b.s.fail(b.u, "get", b.key, err)
	}
	return buf, nil
}
