package main

// s3:// on the command line (issue 25): the checkpoint commands and a stage,
// against the real server scripts/s3-server.sh starts; skipped without it.

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/reffix"
	"github.com/mdlm-go/mdlm/internal/s3test"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/objstore"
)

// s3CLIEnv points the AWS variables at the test server and MDLM_CACHE at a
// fresh directory, and returns a fresh s3:// prefix, or skips.
func s3CLIEnv(t *testing.T) string {
	t.Setenv("MDLM_CACHE", t.TempDir())
	return s3test.Prefix(t, "cli-ckpt")
}

// checkpoint import -o s3://, export from s3:// to s3://key, and a stage
// (pack) reading and writing s3:// from its flags: each result is what the
// local command makes.
func TestS3CheckpointAndStageFlags(t *testing.T) {
	base := s3CLIEnv(t)
	fx := reffix.All(t)[0]
	dir := t.TempDir()
	ck := filepath.Join(dir, "ck")
	local := filepath.Join(dir, "local.safetensors")
	src := filepath.Join(fx.Dir, "dit.safetensors")
	tokens := stagetest.TokensArtifact(t, "gpt2", "Hello world, this is a document.", "And another one.")
	for _, args := range [][]string{
		{"checkpoint", "import", src, "-o", ck},
		{"checkpoint", "export", ck, "-o", local},
		{"checkpoint", "import", src, "-o", base + "/ck"},
		{"checkpoint", "import", src, "-o", base + "/ck"}, // the same artifact again: kept
		{"checkpoint", "export", base + "/ck", "-o", base + "/out/model.safetensors"},
		{"pack", tokens, "-o", base + "/packed", "--length", "8"},
		{"pack", base + "/packed-in", "-o", filepath.Join(dir, "never"), "--length", "8"},
	} {
		out, errOut, code := mdlm(t, args...)
		missing := strings.HasSuffix(args[1], "/packed-in")
		if missing != (code != 0) || missing && !strings.Contains(errOut, "no artifact") {
			t.Fatalf("mdlm %s = exit %d:\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	ctx := context.Background()
	s, err := objstore.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := artifact.Read(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := objstore.ParseURL(base + "/ck")
	if got, ok, err := s.Exists(ctx, u); !ok || err != nil || got.Digest() != want.Digest() {
		t.Errorf("import -o s3://: %s, %v, %v; local import %s", got.Digest(), ok, err, want.Digest())
	}
	ou, _ := objstore.ParseURL(base + "/out/model.safetensors")
	objs, err := s.Objects(ctx, ou)
	if err != nil || len(objs) != 1 {
		t.Fatalf("export -o s3://: %v, %v", objs, err)
	}
	path, err := s.FetchObject(ctx, ou.Bucket, objs[0], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(local)
	b, _ := os.ReadFile(path)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("export -o s3:// uploaded %d bytes differing from the local export's %d", len(b), len(a))
	}
	pu, _ := objstore.ParseURL(base + "/packed")
	if m, ok, err := s.Exists(ctx, pu); !ok || err != nil || m.Type != artifact.PackedType {
		t.Errorf("pack -o s3://: %v, %v, %v", m.Type, ok, err)
	}
}

// checkpoint pull -o s3:// publishes what a local pull makes.
func TestS3PullToBucket(t *testing.T) {
	base := s3CLIEnv(t)
	gpt2 := reffix.Subdirs(t, "MDLM_GPT2_FIXTURES", "gpt2")[0]
	h := &modelHub{token: "hf_test_token", repos: map[string]map[string][]byte{"org/gpt2-tiny": {}}}
	for _, f := range []string{"config.json", "model.safetensors"} {
		raw, err := os.ReadFile(filepath.Join(gpt2, f))
		if err != nil {
			t.Fatal(err)
		}
		h.repos["org/gpt2-tiny"][f] = raw
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "hf_test_token")
	local := filepath.Join(t.TempDir(), "scorer")
	for _, out := range []string{local, base + "/scorer"} {
		if stdout, stderr, code := mdlm(t, "checkpoint", "pull", "org/gpt2-tiny", "-o", out); code != 0 {
			t.Fatalf("pull -o %s: exit %d\n%s%s", out, code, stdout, stderr)
		}
	}
	want, err := artifact.Read(local, artifact.CheckpointType)
	if err != nil {
		t.Fatal(err)
	}
	s, err := objstore.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := objstore.ParseURL(base + "/scorer")
	if got, ok, err := s.Exists(context.Background(), u); !ok || err != nil || got.Digest() != want.Digest() {
		t.Errorf("pull -o s3://: %s, %v, %v; local pull %s", got.Digest(), ok, err, want.Digest())
	}
}
