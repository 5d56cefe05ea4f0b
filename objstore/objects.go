package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxListObjects caps the objects one source prefix may name (README's
// limits table); a variable so tests can lower it.
var MaxListObjects = 100000

// maxKeyLen is S3's limit on a key; a listing naming a longer one is refused.
const maxKeyLen = 1024

// Object is one plain object of a bucket (a download source, not an
// artifact): its key, size and ETag, which changes whenever its content does.
type Object struct {
	Key  string
	Size int64
	ETag string
}

// Objects lists what a source URL names: the object whose key is u's prefix,
// if there is one, else every object under prefix/ in key order (keys ending
// in "/", folder markers, left out). An empty result is an error naming u.
func (s *Store) Objects(ctx context.Context, u URL) ([]Object, error) {
	if u.Prefix != "" {
		h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.Bucket, Key: &u.Prefix})
		switch {
		case err == nil:
			return []Object{{Key: u.Prefix, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)}}, nil
		case !isNotFound(err):
			return nil, s.fail(u, "head", u.Prefix, err)
		}
	}
	prefix := ""
	if u.Prefix != "" {
		prefix = u.Prefix + "/"
	}
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &u.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(u, "list", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") || !strings.HasPrefix(key, prefix) {
				continue
			}
			if len(key) > maxKeyLen {
				return nil, fmt.Errorf("object store: %s: the listing names a key of %d bytes, more than S3's %d", u, len(key), maxKeyLen)
			}
			if len(out) >= MaxListObjects {
				return nil, fmt.Errorf("object store: %s: more than %d objects; name a narrower prefix", u, MaxListObjects)
			}
			out = append(out, Object{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("object store: %s: no such object, and no objects under it", u)
	}
	return out, nil
}

// ObjectCachePath is where the local cache under root keeps one version of
// an object: root/s3-objects/<bucket>/<sha256 of key and ETag>/<base name>.
// The key never becomes a path (only its hash and a sanitized base name,
// which keeps the extension readers go by), and a changed object (another
// ETag) gets another path.
func ObjectCachePath(root, bucket string, o Object) string {
	sum := sha256.Sum256([]byte(o.Key + "\x00" + o.ETag))
	return filepath.Join(root, "s3-objects", bucket, hex.EncodeToString(sum[:12]), safeBase(o.Key))
}

// safeBase is the last segment of key reduced to letters, digits, '.', '-'
// and '_' (others become '_'), at most 100 bytes from its end; "object" if
// nothing but dots is left.
func safeBase(key string) string {
	b := []byte(path.Base(key))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	name := string(b[max(0, len(b)-100):])
	if strings.Trim(name, ".") == "" { // "", ".", "..", or dots only
		name = "object"
	}
	return name
}

// FetchObject makes one version of an object available in the local cache
// under root (ObjectCachePath) and returns its path: a copy there of the
// right size is reused; else it is downloaded in parallel ranged reads, each
// conditioned on the listed ETag (a changed object fails the download instead
// of mixing versions), into a temporary file renamed into place when complete.
func (s *Store) FetchObject(ctx context.Context, bucket string, o Object, root string) (string, error) {
	u := URL{Bucket: bucket}
	if o.Size < 0 || o.Size > MaxFileSize {
		return "", fmt.Errorf("object store: s3://%s/%s: size %d outside [0, %d]", bucket, o.Key, o.Size, MaxFileSize)
	}
	dest := ObjectCachePath(root, bucket, o)
	if fi, err := os.Stat(dest); err == nil && fi.Mode().IsRegular() && fi.Size() == o.Size {
		return dest, nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("object store cache: %w", err)
	}
	fh, err := os.CreateTemp(filepath.Dir(dest), ".part-*")
	if err != nil {
		return "", fmt.Errorf("object store cache: %w", err)
	}
	tmp := fh.Name()
	err = s.fillObject(ctx, u, o, fh)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dest)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return dest, nil
}

// fillObject writes o into fh with ranged reads of PartSize, in parallel,
// each If-Match the listed ETag.
func (s *Store) fillObject(ctx context.Context, u URL, o Object, fh *os.File) error {
	ps := s.PartSize
	n := max(1, int((o.Size+ps-1)/ps))
	return parallel(ctx, s.Workers, n, func(ctx context.Context, i int) error {
		off := int64(i) * ps
		want := min(ps, o.Size-off)
		in := &s3.GetObjectInput{Bucket: &u.Bucket, Key: &o.Key}
		if o.ETag != "" {
			in.IfMatch = aws.String(o.ETag)
		}
		if o.Size > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+want-1))
		}
		out, err := s.client.GetObject(ctx, in)
		if err != nil {
			if isCode(err, "PreconditionFailed") || statusOf(err) == 412 {
				return fmt.Errorf("object store: s3://%s/%s changed while it was downloaded; rerun", u.Bucket, o.Key)
			}
			return s.fail(u, "get", o.Key, err)
		}
		defer out.Body.Close()
		got, err := copyAt(fh, off, io.LimitReader(out.Body, want+1))
		if err != nil {
			return s.fail(u, "get", o.Key, err)
		}
		if got != want {
			return fmt.Errorf("object store: get s3://%s/%s: bytes %d-: got %d bytes, want %d (changed since it was listed?)", u.Bucket, o.Key, off, got, want)
		}
		return nil
	})
}

// Children lists the names of the sub-prefixes directly under u (an
// artifact cache: one per output), in key order; at most MaxListObjects. A
// name that is not one plain path element (empty, ".", "..", a backslash or
// control byte) is left out.
func (s *Store) Children(ctx context.Context, u URL) ([]string, error) {
	prefix := ""
	if u.Prefix != "" {
		prefix = u.Prefix + "/"
	}
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &u.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail(u, "list", prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			name, ok := childName(prefix, aws.ToString(cp.Prefix))
			if !ok {
				continue
			}
			if len(out) >= MaxListObjects {
				return nil, fmt.Errorf("object store: %s: more than %d prefixes under it", u, MaxListObjects)
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// childName is the name a listing's common prefix gives the sub-prefix of
// prefix ("p/" + name + "/"): one path element, not "." or "..", without
// backslashes or control bytes; false for anything else.
func childName(prefix, listed string) (string, bool) {
	name, ok := strings.CutPrefix(listed, prefix)
	name, slash := strings.CutSuffix(name, "/")
	if !ok || !slash || name == "" || strings.Contains(name, "/") || validPrefix(name) != nil {
		return "", false
	}
	return name, true
}
