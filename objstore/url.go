// Package objstore keeps mdlm artifacts on S3 and S3-compatible object stores
// (issue 25). An artifact lives under a prefix, s3://bucket/prefix/, as one
// object per file plus artifact.json, the manifest, which is written last and
// is the commit point: a prefix without a manifest is absent to every reader.
// Readers verify every file's size and sha256 against the manifest before a
// local copy appears (by rename) under its final name.
//
// Configuration comes from the standard AWS sources (environment variables,
// shared config and credentials files, profiles) plus the endpoint and
// path-style settings of S3-compatible stores (Config, README "Object
// storage"). Credentials never appear in logs or errors.
package objstore

import (
	"fmt"
	"path"
	"strings"
)

// URL names a prefix of a bucket: s3://bucket/prefix.
type URL struct {
	Bucket string
	Prefix string // slash-separated, no leading or trailing slash; "" is the bucket's root
}

// Limits on what a URL may name; README's limits table lists them.
const (
	maxPrefixLen = 900 // S3 keys are at most 1024 bytes; leave room for file paths
)

// IsURL reports whether s names an object store location.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseURL parses s3://bucket/prefix. The bucket follows S3's naming rules;
// the prefix may not contain empty, "." or ".." segments or control bytes, so
// that it names one place and keys built from it cannot escape it.
func ParseURL(s string) (URL, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return URL{}, fmt.Errorf("object store URL %q: want s3://bucket/prefix", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if err := validBucket(bucket); err != nil {
		return URL{}, fmt.Errorf("object store URL %q: bucket: %w", s, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if err := validPrefix(prefix); err != nil {
		return URL{}, fmt.Errorf("object store URL %q: prefix: %w", s, err)
	}
	return URL{Bucket: bucket, Prefix: prefix}, nil
}

// String is the s3:// form.
func (u URL) String() string {
	if u.Prefix == "" {
		return "s3://" + u.Bucket
	}
	return "s3://" + u.Bucket + "/" + u.Prefix
}

// Key is the object key of rel (a slash-separated artifact file path) under u.
func (u URL) Key(rel string) string {
	if u.Prefix == "" {
		return rel
	}
	return u.Prefix + "/" + rel
}

// Join is the URL of a sub-prefix.
func (u URL) Join(elem string) (URL, error) {
	p := path.Join(u.Prefix, elem)
	if err := validPrefix(p); err != nil || !strings.HasPrefix(p+"/", u.Prefix+"/") && u.Prefix != "" {
		return URL{}, fmt.Errorf("%s: cannot join %q", u, elem)
	}
	return URL{Bucket: u.Bucket, Prefix: p}, nil
}

// validBucket applies S3's bucket naming rules (3 to 63 bytes of lower-case
// letters, digits, dots and hyphens, starting and ending with a letter or digit).
func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("%q: must be 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' {
			return fmt.Errorf("%q: only lower-case letters, digits, '.' and '-' are allowed", b)
		}
		if !alnum && (i == 0 || i == len(b)-1) {
			return fmt.Errorf("%q: must start and end with a letter or digit", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("%q: two dots in a row", b)
	}
	return nil
}

func validPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxPrefixLen {
		return fmt.Errorf("%d bytes, more than %d", len(p), maxPrefixLen)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%q: leading slash", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q: empty, '.' or '..' segment", p)
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\' {
			return fmt.Errorf("%q: control byte or backslash", p)
		}
	}
	return nil
}
