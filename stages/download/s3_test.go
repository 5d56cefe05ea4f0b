package download

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/objstore"
)

// s3Test points the AWS variables at the test server (scripts/s3-server.sh),
// or skips, and returns a raw client and a fresh prefix of the test bucket.
func s3Test(t *testing.T) (*s3.Client, string, string) {
	t.Helper()
	ep := os.Getenv("MDLM_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("MDLM_TEST_S3_ENDPOINT is unset: start a server with eval \"$(scripts/s3-server.sh start)\"")
	}
	ak, sk := os.Getenv("MDLM_TEST_S3_ACCESS_KEY"), os.Getenv("MDLM_TEST_S3_SECRET_KEY")
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_S3": ep, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": ak,
		"AWS_SECRET_ACCESS_KEY": sk, "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"} {
		t.Setenv(k, v)
	}
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ep), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	b := make([]byte, 6)
	rand.Read(b)
	return c, os.Getenv("MDLM_TEST_S3_BUCKET"), fmt.Sprintf("download-test/%s-%x", t.Name(), b)
}

func putObject(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// s3:// sources: one object, and a prefix whose data files are read in key
// order (others skipped); the manifest records each object's ETag; a second
// run reads the cached copies; a changed object is fetched again.
func TestS3Sources(t *testing.T) {
	c, bucket, prefix := s3Test(t)
	cache := t.TempDir()
	putObject(t, c, bucket, prefix+"/corpus/b.txt", "three\nfour\n")
	putObject(t, c, bucket, prefix+"/corpus/a.jsonl", `{"text": "one"}`+"\n"+`{"text": "two"}`+"\n")
	putObject(t, c, bucket, prefix+"/corpus/README.md", "not data\n")
	putObject(t, c, bucket, prefix+"/extra.txt", "five\n")
	base := "s3://" + bucket + "/" + prefix
	o := Options{Sources: []string{base + "/corpus/", base + "/extra.txt"}, CacheDir: cache, TextSplit: string(datasets.ByLine), ShardRows: 10}
	o.Out = filepath.Join(t.TempDir(), "text")
	m, err := run(o)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, r := range readSplit(t, o.Out, "train") {
		texts = append(texts, r.Text)
	}
	if got := strings.Join(texts, " "); got != "one two three four five" {
		t.Errorf("documents %q, want one two three four five (key order, README.md skipped)", got)
	}
	m, err = artifact.Read(o.Out, artifact.TextType) // as a reader sees it
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := m.Params["s3_objects"].([]any)
	if len(objs) != 3 || !strings.Contains(fmt.Sprint(objs), "corpus/a.jsonl") || !strings.Contains(fmt.Sprint(objs), "etag") {
		t.Errorf("manifest's s3_objects = %v", m.Params["s3_objects"])
	}
	cached, _ := filepath.Glob(filepath.Join(cache, "s3-objects", bucket, "*", "*"))
	if len(cached) != 3 {
		t.Errorf("object cache holds %v, want 3 files", cached)
	}

	// A changed object is a new version: fetched again, read again.
	putObject(t, c, bucket, prefix+"/extra.txt", "FIVE\n")
	o.Out = filepath.Join(t.TempDir(), "text2")
	if _, err := run(o); err != nil {
		t.Fatal(err)
	}
	rows := readSplit(t, o.Out, "train")
	if len(rows) != 5 || rows[4].Text != "FIVE" {
		t.Errorf("after the change: %v", rows)
	}
	if _, err := artifact.Read(o.Out, artifact.TextType); err != nil {
		t.Fatal(err)
	}

	o.Sources = []string{base + "/nothing-here"}
	o.Out = filepath.Join(t.TempDir(), "text3")
	if _, err := run(o); err == nil || !strings.Contains(err.Error(), "no such object") {
		t.Errorf("missing source: %v", err)
	}
}

// The cache path of an object never leaves its directory, whatever the key.
func TestObjectCachePathConfined(t *testing.T) {
	root := t.TempDir()
	for _, key := range []string{"../../etc/passwd", "a/..", "..", "/", "x/\x00/y", strings.Repeat("a", 1000) + ".txt", "dir/"} {
		p := objstore.ObjectCachePath(root, "b", objstore.Object{Key: key, ETag: `"e"`})
		rel, err := filepath.Rel(filepath.Join(root, "s3-objects", "b"), p)
		if err != nil || !filepath.IsLocal(rel) || strings.Count(filepath.ToSlash(rel), "/") != 1 || len(filepath.Base(p)) > 100 {
			t.Errorf("key %q: cache path %s", key, p)
		}
	}
}
