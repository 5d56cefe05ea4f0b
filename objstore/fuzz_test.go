package objstore

import (
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
