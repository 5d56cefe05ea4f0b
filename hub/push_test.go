package hub

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/hub/hubtest"
)

// pushDir writes a directory with a large binary file, a small text file in
// a subdirectory, and a small binary file.
func pushDir(t *testing.T) string {
	dir := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	for p, data := range map[string][]byte{"model.safetensors": big, "sub/config.json": []byte(`{"a":1}`), "tiny.bin": {0, 1, 2}} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Push, then pull back through the tree and resolve APIs: bit for bit, on
// main and on a new branch; a second push uploads no LFS object again; the
// token goes to no log and not to the LFS store.
func TestPushRoundTrip(t *testing.T) {
	const token = "hf_push_secret_token_42"
	h := hubtest.NewPushHub(t, token)
	var logs bytes.Buffer
	c := &Client{Endpoint: h.Srv.URL, Token: token, HTTP: h.Srv.Client(), MaxRetries: 1, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	dir := pushDir(t)
	ctx := context.Background()
	for _, rev := range []string{"main", "exp-1"} {
		id, err := c.Push(ctx, PushOptions{Repo: "org/ck", Revision: rev, Dir: dir, Private: true})
		if err != nil || id != "abc123" {
			t.Fatalf("Push to %s = %q, %v", rev, id, err)
		}
		files, err := c.ListModelFiles(ctx, "org/ck", rev)
		if err != nil || len(files) != 3 {
			t.Fatalf("listing %s: %v, %v", rev, files, err)
		}
		out := t.TempDir()
		if err := c.DownloadAll(ctx, "org/ck", rev, files, out, 2, nil); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			a, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
			b, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(f.Path)))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s@%s: %s differs after push and pull", "org/ck", rev, f.Path)
			}
		}
	}
	if !h.Private["org/ck"] {
		t.Error("--private did not reach the repository creation")
	}
	if h.Puts != 2 {
		t.Errorf("%d LFS uploads, want 2 (the large and the binary file, once each)", h.Puts)
	}
	for _, a := range h.SawAuth {
		if a != "" {
			t.Errorf("LFS upload carried Authorization %q", a)
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the token appears in the logs")
	}
}

// A hub answer is hostile: an LFS action that is not http(s), an object that
// was not asked for, a path that would escape the repository.
func TestHostilePush(t *testing.T) {
	c := &Client{Endpoint: "http://127.0.0.1:1", MaxRetries: 0}
	if err := c.lfsTransfer(context.Background(), pushFile{Path: "x"}, map[string]lfsAction{"upload": {Href: "file:///etc/passwd"}}); err == nil {
		t.Error("an LFS upload to file:// was accepted")
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "f"), []byte("x"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(bad, "link"))
	if _, err := c.Push(context.Background(), PushOptions{Repo: "org/x", Dir: bad}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Push of a symbolic link: %v", err)
	}
	for _, repo := range []string{"../x", "org/x/y", ""} {
		if _, err := c.Push(context.Background(), PushOptions{Repo: repo, Dir: t.TempDir()}); err == nil {
			t.Errorf("Push to repository %q accepted", repo)
		}
	}
	if _, err := c.Push(context.Background(), PushOptions{Repo: "org/x", Revision: "../main", Dir: t.TempDir()}); err == nil {
		t.Error("Push to revision ../main accepted")
	}
}
