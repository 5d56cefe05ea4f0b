package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mockHub serves a small dataset repository like the Hugging Face hub does.
type mockHub struct {
	files     map[string][]byte
	token     string       // required bearer token ("" = public)
	fail429   atomic.Int32 // answer this many requests with 429 first
	fail500   atomic.Int32
	cutAfter  int // first download of a file is cut after this many bytes (0 = never)
	cut       map[string]bool
	corrupt   string       // path whose bytes are served with one byte flipped
	ranges    atomic.Int32 // Range requests seen
	listPages int
}

func (m *mockHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.token != "" && r.Header.Get("Authorization") != "Bearer "+m.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if m.fail429.Load() > 0 {
		m.fail429.Add(-1)
		w.Header().Set("Retry-After", "0")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	if m.fail500.Load() > 0 {
		m.fail500.Add(-1)
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/datasets/org/owt/tree/main"):
		m.list(w, r)
	case strings.HasPrefix(r.URL.Path, "/datasets/org/owt/resolve/main/"):
		m.resolve(w, r, strings.TrimPrefix(r.URL.Path, "/datasets/org/owt/resolve/main/"))
	default:
		http.NotFound(w, r)
	}
}

func (m *mockHub) list(w http.ResponseWriter, r *http.Request) {
	var paths []string
	for p := range m.files {
		paths = append(paths, p)
	}
	sortStrings(paths)
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	m.listPages++
	per := 2
	lo, hi := page*per, min(page*per+per, len(paths))
	var out []map[string]any
	if page == 0 {
		out = append(out, map[string]any{"type": "directory", "path": "plain_text"})
	}
	for _, p := range paths[lo:hi] {
		sum := sha256.Sum256(m.files[p])
		out = append(out, map[string]any{"type": "file", "path": p, "size": 133,
			"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(m.files[p])}})
	}
	if hi < len(paths) {
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?recursive=true&page=%d>; rel="next"`, r.Host, r.URL.Path, page+1))
	}
	json.NewEncoder(w).Encode(out)
}

func (m *mockHub) resolve(w http.ResponseWriter, r *http.Request, path string) {
	data, ok := m.files[path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if path == m.corrupt {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		m.ranges.Add(1)
		fmt.Sscanf(rg, "bytes=%d-", &start)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		w.WriteHeader(http.StatusPartialContent)
	}
	body := data[start:]
	if m.cutAfter > 0 && !m.cut[path] {
		m.cut[path] = true
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:m.cutAfter])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-transfer
	}
	w.Write(body)
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func newMock() *mockHub {
	m := &mockHub{files: map[string][]byte{}, cut: map[string]bool{}}
	for i := 0; i < 3; i++ {
		m.files[fmt.Sprintf("plain_text/train-%05d-of-00003.parquet", i)] = []byte(strings.Repeat(fmt.Sprintf("shard %d data ", i), 500))
	}
	m.files["README.md"] = []byte("# owt\n")
	return m
}

func client(t *testing.T, srv *httptest.Server) *Client {
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "")
	c := NewClient()
	c.Backoff = time.Millisecond
	c.Log = nil
	return c
}

func TestListAndDownload(t *testing.T) {
	m := newMock()
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := client(t, srv)
	if c.Endpoint != srv.URL {
		t.Fatalf("HF_ENDPOINT not honoured: %s", c.Endpoint)
	}
	files, err := c.ListFiles(context.Background(), "org/owt", "main")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || m.listPages != 2 {
		t.Fatalf("listed %d files in %d pages: %+v", len(files), m.listPages, files)
	}
	for _, f := range files {
		if f.SHA256 == "" || f.Size != int64(len(m.files[f.Path])) {
			t.Errorf("%s: size %d sha %q (LFS size must win over the pointer size)", f.Path, f.Size, f.SHA256)
		}
	}
	dir := t.TempDir()
	var got atomic.Int64
	if err := c.DownloadAll(context.Background(), "org/owt", "main", files, dir, 3, func(n int64) { got.Add(n) }); err != nil {
		t.Fatal(err)
	}
	for p, want := range m.files {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(data) != string(want) {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestResumeInterruptedTransfer(t *testing.T) {
	m := newMock()
	m.cutAfter = 1000
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := client(t, srv)
	files, _ := c.ListFiles(context.Background(), "org/owt", "main")
	dir := t.TempDir()
	f := files[1]
	dest := filepath.Join(dir, "x.parquet")
	// The first attempt is cut mid-transfer: the error keeps the .part file.
	c.MaxRetries = 0
	err := c.Download(context.Background(), "org/owt", "main", f, dest, nil)
	if err == nil {
		t.Fatal("cut transfer reported success")
	}
	if st, err := os.Stat(dest + ".part"); err != nil || st.Size() != 1000 {
		t.Fatalf("partial file: %v %v", st, err)
	}
	// The rerun resumes with a Range request.
	if err := c.Download(context.Background(), "org/owt", "main", f, dest, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dest)
	if string(data) != string(m.files[f.Path]) || m.ranges.Load() != 1 {
		t.Errorf("resumed file differs or no Range request (ranges %d)", m.ranges.Load())
	}
	if _, err := os.Stat(dest + ".part"); !os.IsNotExist(err) {
		t.Error(".part left behind")
	}
}

func TestChecksumMismatch(t *testing.T) {
	m := newMock()
	m.corrupt = "plain_text/train-00000-of-00003.parquet"
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := client(t, srv)
	files, _ := c.ListFiles(context.Background(), "org/owt", "main")
	dest := filepath.Join(t.TempDir(), "a.parquet")
	err := c.Download(context.Background(), "org/owt", "main", files[1], dest, nil)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), m.corrupt) {
		t.Fatalf("err = %v", err)
	}
	for _, p := range []string{dest, dest + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s published despite the bad checksum", p)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	m := newMock()
	srv := httptest.NewServer(m)
	defer srv.Close()
	c := client(t, srv)
	ctx := context.Background()

	// 429 and 500 are retried.
	m.fail429.Store(2)
	m.fail500.Store(1)
	if _, err := c.ListFiles(ctx, "org/owt", "main"); err != nil {
		t.Fatalf("retries did not absorb 429/500: %v", err)
	}
	// ... but not forever.
	m.fail500.Store(100)
	c.MaxRetries = 2
	_, err := c.ListFiles(ctx, "org/owt", "main")
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 500 {
		t.Errorf("persistent 500: err = %v", err)
	}
	m.fail500.Store(0)

	// 404 names the path; 401 asks for HF_TOKEN.
	err = c.Download(ctx, "org/owt", "main", File{Path: "nope.parquet", Size: 1}, filepath.Join(t.TempDir(), "n"), nil)
	if !errors.As(err, &he) || he.Status != 404 || !strings.Contains(err.Error(), "nope.parquet") {
		t.Errorf("404: err = %v", err)
	}
	m.token = "secret"
	_, err = c.ListFiles(ctx, "org/owt", "main")
	if !errors.As(err, &he) || he.Status != 401 || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("401: err = %v", err)
	}
	t.Setenv("HF_TOKEN", "secret")
	if _, err := NewClient().ListFiles(ctx, "org/owt", "main"); err != nil {
		t.Errorf("with HF_TOKEN: %v", err)
	}
}
