package checkpoint

// Issue 19, defect 2: a model repository whose tree lists ../../../../x.ckpt
// made `checkpoint pull` write there, and a revision with ../ (--revision, or
// hub:org/name@../../.. in a pipeline's with: value) did the same.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/hub"
)

// evilModelHub lists one file under a hostile path and serves it for any URL.
type evilModelHub struct {
	path     string
	requests atomic.Int32
}

func (h *evilModelHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	data := []byte("not a checkpoint")
	if strings.HasPrefix(r.URL.Path, "/api/models/") {
		sum := sha256.Sum256(data)
		json.NewEncoder(w).Encode([]map[string]any{{"type": "file", "path": h.path, "size": len(data),
			"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}}})
		return
	}
	w.Write(data)
}

func evilClient(srv *httptest.Server) *hub.Client {
	return &hub.Client{Endpoint: srv.URL, HTTP: srv.Client(), Backoff: time.Millisecond}
}

// noFileNamed fails if any file under root is called name.
func noFileNamed(t *testing.T, root, name string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), name) {
			t.Errorf("written: %s", p)
		}
		return nil
	})
}

func TestHostilePullListing(t *testing.T) {
	for _, bad := range []string{"../../../../x.ckpt", "a/../../../x.ckpt", "/x.ckpt"} {
		h := &evilModelHub{path: bad}
		srv := httptest.NewServer(h)
		base := t.TempDir()
		cache := filepath.Join(base, "a", "b", "c", "cache")
		_, err := Pull(context.Background(), PullOptions{Repo: "org/evil", Revision: "main", Out: filepath.Join(base, "out"),
			Cache: cache, Client: evilClient(srv)})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "org/evil") || !strings.Contains(err.Error(), bad) {
			t.Errorf("listing %q: err = %v, want a refusal naming the repository and the entry", bad, err)
		}
		noFileNamed(t, base, "x.ckpt")
	}
}

func TestHostilePullRevision(t *testing.T) {
	h := &evilModelHub{path: "x.ckpt"}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := t.TempDir()
	cache := filepath.Join(base, "a", "b", "cache")
	for _, ref := range [][2]string{{"org/evil", "../../../.."}, {"org/evil", "../../x"}, {"../../evil", "main"}, {"org/evil", "/tmp"}} {
		_, err := Pull(context.Background(), PullOptions{Repo: ref[0], Revision: ref[1], Out: filepath.Join(base, "out"),
			Cache: cache, Client: evilClient(srv)})
		if err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("pull %s@%s: err = %v", ref[0], ref[1], err)
		}
	}
	if n := h.requests.Load(); n != 0 {
		t.Errorf("%d requests for refused names", n)
	}
	noFileNamed(t, base, "x.ckpt")
}

// A hub: reference in a stage flag or a pipeline's with: value.
func TestHostileHubRef(t *testing.T) {
	for _, tc := range []struct {
		repo, rev string
		ok        bool
	}{
		{"org/name", "main", true},
		{"org/name", "refs/pr/3", true},
		{"gpt2", "0123456789abcdef0123456789abcdef01234567", true},
		{"org/name", "../../../x", false},
		{"org/name", "..", false},
		{"../x", "main", false},
		{"org/../../x", "main", false},
		{"org/name", "/abs", false},
	} {
		dir, err := hubRefDir("/cache", tc.repo, tc.rev)
		if (err == nil) != tc.ok {
			t.Errorf("hubRefDir(%q, %q) = %q, %v; want ok=%v", tc.repo, tc.rev, dir, err, tc.ok)
		}
		if err == nil && filepath.Dir(dir) != filepath.Join("/cache", "checkpoints") {
			t.Errorf("hubRefDir(%q, %q) = %q, not one directory of <cache>/checkpoints", tc.repo, tc.rev, dir)
		}
	}
	h := &evilModelHub{path: "x.ckpt"}
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := t.TempDir()
	t.Setenv("MDLM_CACHE", filepath.Join(base, "a", "b", "cache"))
	t.Setenv("HF_ENDPOINT", srv.URL)
	for _, ref := range []string{"hub:org/name@../../../../x", "hub:../../x@main", "hub:org/name@/tmp/x"} {
		if _, err := OpenRef(context.Background(), ref, nil); err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("OpenRef(%q): err = %v", ref, err)
		}
	}
	if n := h.requests.Load(); n != 0 {
		t.Errorf("%d requests for refused references", n)
	}
	noFileNamed(t, base, "x")
}
