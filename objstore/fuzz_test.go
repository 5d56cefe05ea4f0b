package objstore

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseURL: whatever parses names one bucket and a prefix whose keys
// cannot leave it, and prints back to itself.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket", "s3://b.c-d/x/y/", "s3://bucket/../x", "s3://bucket/a//b", "s3://x/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		for _, seg := range strings.Split(u.Key("f"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("ParseURL(%q) = %+v: key %q has segment %q", s, u, u.Key("f"), seg)
			}
		}
		if back, err := ParseURL(u.String()); err != nil || back != u {
			t.Fatalf("ParseURL(%q).String() = %q parses to %+v, %v", s, u.String(), back, err)
		}
	})
}

// FuzzObjectCachePath: whatever key and ETag a listing returns, the cache
// path is one file two levels under the bucket's directory, named only by
// safe characters.
func FuzzObjectCachePath(f *testing.F) {
	for _, s := range []string{"a/b.jsonl.gz", "../../x", "..", "", "/", "a/\x00/b", "dir/"} {
		f.Add(s, `"etag"`)
	}
	f.Fuzz(func(t *testing.T, key, etag string) {
		root := "/cache"
		p := ObjectCachePath(root, "bucket", Object{Key: key, ETag: etag})
		rel, err := filepath.Rel("/cache/s3-objects/bucket", p)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("key %q: %s leaves the cache", key, p)
		}
		dir, base := filepath.Split(rel)
		if strings.Count(dir, "/") != 1 || base == "" || base == "." || base == ".." || len(base) > 100 ||
			strings.Trim(base, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			t.Fatalf("key %q: cache path %s", key, p)
		}
	})
}

// FuzzChildName: whatever common prefix a listing returns, a name accepted is
// one plain path element under the cache, which joins back to the listing.
func FuzzChildName(f *testing.F) {
	for _, s := range []string{"p/a/", "p/../", "p/./", "p//", "p/a/b/", "p/a", "q/a/", "p/a\\b/", "p/\x00/"} {
		f.Add("p/", s)
	}
	f.Add("", "x/")
	f.Fuzz(func(t *testing.T, prefix, listed string) {
		name, ok := childName(prefix, listed)
		if !ok {
			return
		}
		if !filepath.IsLocal(name) || filepath.Base(name) != name || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
			t.Fatalf("childName(%q, %q) = %q: not one path element", prefix, listed, name)
		}
		if prefix+name+"/" != listed {
			t.Fatalf("childName(%q, %q) = %q does not join back", prefix, listed, name)
		}
	})
}
