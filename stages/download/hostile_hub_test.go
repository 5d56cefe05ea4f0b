package download

// Issue 19, defect 2: `download --dataset` wrote a listed ../../../../x file
// outside the cache and exited 0; a --revision with ../ did the same.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
)

func TestHostileDatasetListing(t *testing.T) {
	d := datasets.Registry()["openwebtext-split"]
	data := []byte("evil")
	for _, bad := range []string{"../../../../plain_text/train-00000-of-00001.parquet", "plain_text/../../../../train-00000-of-00001.parquet", "/train-00000-of-00001.parquet"} {
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			if strings.HasPrefix(r.URL.Path, "/api/datasets/") {
				sum := sha256.Sum256(data)
				json.NewEncoder(w).Encode([]map[string]any{{"type": "file", "path": bad, "size": len(data),
					"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}}})
				return
			}
			w.Write(data)
		}))
		c := &hub.Client{Endpoint: srv.URL, HTTP: srv.Client(), Backoff: time.Millisecond}
		base := t.TempDir()
		cache := filepath.Join(base, "a", "b", "c", "d", "cache")
		_, err := fetchDataset(context.Background(), d, &Options{Client: c, CacheDir: cache, Revision: "main", log: quietLog()})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), d.Repo) || !strings.Contains(err.Error(), bad) {
			t.Errorf("listing %q: err = %v, want a refusal naming %s and the entry", bad, err, d.Repo)
		}
		if requests.Load() != 1 {
			t.Errorf("listing %q: %d requests, want the listing only", bad, requests.Load())
		}
		filepath.WalkDir(base, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				t.Errorf("written: %s", p)
			}
			return nil
		})
	}
}

func TestHostileDatasetRevision(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	c := &hub.Client{Endpoint: srv.URL, HTTP: srv.Client(), Backoff: time.Millisecond}
	base := t.TempDir()
	for i, rev := range []string{"../../../x", "..", "/etc", "a/../../b", "-x"} {
		_, err := run(Options{Dataset: "openwebtext-split", Revision: rev, Out: filepath.Join(base, fmt.Sprint("out", i)), Client: c,
			CacheDir: filepath.Join(base, "a", "b", "cache")})
		if err == nil || !strings.Contains(err.Error(), "--revision") {
			t.Errorf("--revision %q: err = %v", rev, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests for refused revisions", n)
	}
	if _, err := os.Stat(filepath.Join(base, "x")); err == nil {
		t.Error("wrote outside the cache")
	}
}
