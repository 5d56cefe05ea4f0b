package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 25: show and ui refuse a cache in a bucket with the local mirror to
// use instead, before touching the network.
func TestShowUIRefuseBucketCache(t *testing.T) {
	t.Setenv("MDLM_CACHE", t.TempDir())
	mirror := filepath.Join("s3", "bkt", "runs", "a")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"show", "--cache-dir", "s3://bkt/runs/a"}, []string{"show: --cache-dir s3://bkt/runs/a is a bucket", mirror}},
		{[]string{"ui", "--addr", "127.0.0.1:0", "--cache-dir", "s3://bkt/runs/a"}, []string{"ui: --cache-dir s3://bkt/runs/a is a bucket", mirror}},
		{[]string{"show", "--cache-dir", "s3://bkt/../x"}, []string{"show: --cache-dir s3://bkt/../x"}},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code == 0 {
			t.Errorf("%v succeeded", tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%v: stderr %q lacks %q", tc.args, errb.String(), w)
			}
		}
	}
}
