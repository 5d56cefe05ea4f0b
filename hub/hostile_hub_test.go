package hub

// Tests for issue 19 ("Careless and hostile input"): defect 2 (hub listings,
// repository ids and revisions must not write outside the cache), defect 11
// (Retry-After is capped) and defect 16d (the bearer token goes only to the
// endpoint's own scheme, host and port).

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
)

func TestHostileRepoID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"gpt2", true},
		{"org/name", true},
		{"kuleshov-group/mdlm-owt", true},
		{"openai-community/gpt2-large", true},
		{"a_b/c.d-e", true},
		{"_x/y_", true},
		{"", false},
		{"../x", false},
		{"org/..", false},
		{"org/../x", false},
		{"a/b/c", false},
		{"/abs", false},
		{"org/", false},
		{"org/name.git", false},
		{"org/na--me", false},
		{"org/-name", false},
		{"org/name.", false},
		{".org/name", false},
		{"org/na me", false},
		{`org\name`, false},
		{"org/name\x00", false},
		{"org/" + strings.Repeat("a", 96), true},
		{"org/" + strings.Repeat("a", 97), false},
		{"org/nämé", false},
	} {
		if err := ValidateRepoID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateRepoID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestHostileRevision(t *testing.T) {
	for _, tc := range []struct {
		rev string
		ok  bool
	}{
		{"main", true},
		{"v1.0", true},
		{"refs/pr/1", true},
		{"refs/convert/parquet", true},
		{"feature/x-y_z", true},
		{"0123456789abcdef0123456789abcdef01234567", true},
		{"", false},
		{"..", false},
		{"../../../x", false},
		{"a/../../b", false},
		{"/etc", false},
		{"-rf", false},
		{"a//b", false},
		{"a/", false},
		{"a.", false},
		{".hidden", false},
		{"a/.b", false},
		{"x.lock", false},
		{`a\b`, false},
		{"a b", false},
		{"a\nb", false},
		{"a\x00b", false},
		{"a~1", false},
		{"a^", false},
		{"a:b", false},
		{"a?", false},
		{"a*", false},
		{"a[", false},
		{"a@{1}", false},
		{"@", false},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
	} {
		if err := ValidateRevision(tc.rev); (err == nil) != tc.ok {
			t.Errorf("ValidateRevision(%q) = %v, want ok=%v", tc.rev, err, tc.ok)
		}
	}
}

func TestHostileListedPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"config.json", true},
		{"plain_text/train-00000-of-00003.parquet", true},
		{"a/b/c/d.ckpt", true},
		{"..x/y..", true},
		{"", false},
		{"../../../../x.ckpt", false},
		{"a/../../x", false},
		{"a/..", false},
		{"/etc/passwd", false},
		{"a//b", false},
		{"a/./b", false},
		{".", false},
		{"a/", false},
		{`a\b`, false},
		{`..\..\x`, false},
		{"a\x00b", false},
		{"a\nb", false},
		{strings.Repeat("a/", 64) + "x", false},
		{strings.Repeat("a", 256), false},
	} {
		if err := ValidatePath(tc.path); (err == nil) != tc.ok {
			t.Errorf("ValidatePath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

// hostileHub lists whatever entries it is given, for any repository.
type hostileHub struct {
	entries  []map[string]any
	link     string
	requests atomic.Int32
	body     map[string][]byte
}

func (h *hostileHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if h.link != "" {
			w.Header().Set("Link", h.link)
		}
		json.NewEncoder(w).Encode(h.entries)
		return
	}
	for p, b := range h.body {
		if strings.HasSuffix(r.URL.Path, "/"+p) {
			w.Write(b)
			return
		}
	}
	http.NotFound(w, r)
}

func lfsEntry(path string, data []byte) map[string]any {
	sum := sha256.Sum256(data)
	return map[string]any{"type": "file", "path": path, "size": len(data),
		"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}}
}

// Defect 2: a tree listing naming ../../../../x.ckpt (or any other path that is
// not a plain relative one) is refused, naming the repository and the entry,
// for datasets and models alike.
func TestHostileListingRefused(t *testing.T) {
	for _, bad := range []string{"../../../../x.ckpt", "/tmp/x.ckpt", "a/../../x.ckpt", `..\..\x.ckpt`, "a//x.ckpt", "a\x00.ckpt"} {
		for _, model := range []bool{false, true} {
			h := &hostileHub{entries: []map[string]any{lfsEntry("config.json", []byte("{}")), lfsEntry(bad, []byte("evil"))}}
			srv := httptest.NewServer(h)
			c := client(t, srv)
			list := c.ListFiles
			if model {
				list = c.ListModelFiles
			}
			_, err := list(context.Background(), "org/evil", "main")
			srv.Close()
			if err == nil || !strings.Contains(err.Error(), "org/evil") || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
				t.Errorf("model=%v listing %q: err = %v, want a refusal naming org/evil and the entry", model, bad, err)
			}
		}
	}
	// Bad sizes, bad LFS ids and duplicates are refused too.
	for name, entries := range map[string][]map[string]any{
		"negative size": {{"type": "file", "path": "a", "size": -1}},
		"huge size":     {{"type": "file", "path": "a", "size": MaxFileSize + 1}},
		"bad oid":       {{"type": "file", "path": "a", "size": 1, "lfs": map[string]any{"oid": "../x", "size": 1}}},
		"duplicate":     {{"type": "file", "path": "a", "size": 1}, {"type": "file", "path": "a", "size": 2}},
	} {
		srv := httptest.NewServer(&hostileHub{entries: entries})
		_, err := client(t, srv).ListFiles(context.Background(), "org/evil", "main")
		srv.Close()
		if err == nil {
			t.Errorf("%s: listing accepted", name)
		}
	}
}

// Defect 2: a hostile repository id or revision is refused before any request.
func TestHostileRefRefusedBeforeRequest(t *testing.T) {
	h := &hostileHub{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := client(t, srv)
	for _, ref := range [][2]string{{"org/x", "../../../x"}, {"../../x", "main"}, {"org/x", "/etc"}, {"a/b/c", "main"}} {
		if _, err := c.ListModelFiles(context.Background(), ref[0], ref[1]); err == nil {
			t.Errorf("ListModelFiles(%q, %q) accepted", ref[0], ref[1])
		}
		if _, err := c.ListFiles(context.Background(), ref[0], ref[1]); err == nil {
			t.Errorf("ListFiles(%q, %q) accepted", ref[0], ref[1])
		}
		if _, err := CachePath(t.TempDir(), "models", ref[0], ref[1]); err == nil {
			t.Errorf("CachePath(%q, %q) accepted", ref[0], ref[1])
		}
	}
	if n := h.requests.Load(); n != 0 {
		t.Errorf("%d requests sent for refused names", n)
	}
	// Revisions are one directory each: refs/pr/1 does not nest under refs.
	a, _ := CachePath("/c", "models", "org/x", "refs/pr/1")
	b, _ := CachePath("/c", "models", "org/x", "refs")
	if filepath.Dir(a) != filepath.Dir(b) || a == b {
		t.Errorf("revision directories %q and %q nest or collide", a, b)
	}
}

// Defect 2: DownloadAll never writes outside its directory, whether the path
// climbs out or a link inside the directory points out.
func TestHostileDownloadAllConfined(t *testing.T) {
	data := []byte("evil bytes")
	h := &hostileHub{body: map[string][]byte{"x.ckpt": data, "link/x.ckpt": data}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := client(t, srv)
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "cache")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(outside, 0o755)
	sum := sha256.Sum256(data)
	f := func(p string) File { return File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])} }
	if err := c.DownloadAll(context.Background(), "org/x", "main", []File{f("../../../x.ckpt")}, dir, 1, nil); err == nil || !strings.Contains(err.Error(), "../../../x.ckpt") {
		t.Errorf("climbing path: err = %v", err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Skip("no symlinks:", err)
	}
	if err := c.DownloadAll(context.Background(), "org/x", "main", []File{f("link/x.ckpt")}, dir, 1, nil); err == nil {
		t.Error("download through a link out of the cache succeeded")
	}
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "x.ckpt") {
			t.Errorf("written: %s", p)
		}
		return nil
	})
}

// Defect 2/4: a body larger than the listed size, or a Content-Length that
// says so, is refused without filling the disk.
func TestHostileOversizeBody(t *testing.T) {
	big := []byte(strings.Repeat("x", 10000))
	h := &hostileHub{body: map[string][]byte{"a.bin": big}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := client(t, srv)
	c.MaxRetries = 0
	dest := filepath.Join(t.TempDir(), "a.bin")
	err := c.Download(context.Background(), "org/x", "main", File{Path: "a.bin", Size: 10}, dest, nil)
	if err == nil || !strings.Contains(err.Error(), "a.bin") {
		t.Fatalf("oversize body: err = %v", err)
	}
	for _, p := range []string{dest, dest + ".part"} {
		if st, err := os.Stat(p); err == nil && st.Size() > 11 {
			t.Errorf("%s holds %d bytes for a 10-byte file", p, st.Size())
		}
	}
	old := MaxUnlistedSize
	MaxUnlistedSize = 100
	defer func() { MaxUnlistedSize = old }()
	if err := c.FetchURL(context.Background(), srv.URL+"/datasets/org/x/resolve/main/a.bin", dest+".url", nil); err == nil {
		t.Error("FetchURL accepted more than MaxUnlistedSize")
	}
}

// Listing pages are bounded, and a next-page link may not leave the endpoint.
func TestHostileListingBounds(t *testing.T) {
	old := MaxListingPage
	MaxListingPage = 1024
	defer func() { MaxListingPage = old }()
	var entries []map[string]any
	for i := 0; i < 100; i++ {
		entries = append(entries, map[string]any{"type": "file", "path": fmt.Sprintf("f%03d", i), "size": 1})
	}
	srv := httptest.NewServer(&hostileHub{entries: entries})
	_, err := client(t, srv).ListFiles(context.Background(), "org/x", "main")
	srv.Close()
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversize listing page: err = %v", err)
	}
	MaxListingPage = old

	other := &hostileHub{}
	osrv := httptest.NewServer(other)
	defer osrv.Close()
	h := &hostileHub{entries: entries[:1], link: fmt.Sprintf(`<%s/api/datasets/org/x/tree/main?page=1>; rel="next"`, osrv.URL)}
	srv = httptest.NewServer(h)
	defer srv.Close()
	c := client(t, srv)
	c.Token = "secret"
	if _, err := c.ListFiles(context.Background(), "org/x", "main"); err == nil || !strings.Contains(err.Error(), "next-page") {
		t.Errorf("next-page link to another origin: err = %v", err)
	}
	if other.requests.Load() != 0 {
		t.Error("followed a next-page link to another origin")
	}
}

func TestHostileRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"-5", 0},
		{"garbage", 0},
		{"1.5", 0},
		{"100000", 24 * time.Hour},
		{"99999999999999999999999", 24 * time.Hour},
		{"-99999999999999999999999", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
	} {
		if got := retryAfter(tc.v, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// Defect 11: a 503 with Retry-After: 100000 waited 27 h 46 min. Each wait is
// capped by MaxRetryWait, all waits by MaxRetryTotal, and the context still
// cancels a wait.
func TestHostileRetryAfterCapped(t *testing.T) {
	oldWait, oldTotal := MaxRetryWait, MaxRetryTotal
	defer func() { MaxRetryWait, MaxRetryTotal = oldWait, oldTotal }()
	MaxRetryWait, MaxRetryTotal = 20*time.Millisecond, time.Second
	var fails atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "100000")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode([]map[string]any{{"type": "file", "path": "a", "size": 1}})
	}))
	defer srv.Close()
	c := client(t, srv)
	fails.Store(2)
	start := time.Now()
	if _, err := c.ListFiles(context.Background(), "org/x", "main"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("two Retry-After: 100000 answers took %v with a 20ms cap", d)
	}
	// The total budget ends an endless series of 503s.
	MaxRetryTotal = 50 * time.Millisecond
	c.MaxRetries = 1000
	fails.Store(1 << 30)
	start = time.Now()
	_, err := c.ListFiles(context.Background(), "org/x", "main")
	if err == nil || !strings.Contains(err.Error(), "retry budget") || time.Since(start) > 2*time.Second {
		t.Errorf("endless 503: err = %v after %v", err, time.Since(start))
	}
	// The context cancels a long wait.
	MaxRetryWait, MaxRetryTotal = time.Hour, 10*time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.ListFiles(ctx, "org/x", "main"); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("cancelled wait: err = %v after %v", err, time.Since(start))
	}
}

// Defect 16d: the token followed a redirect to another port of the same host.
// It is sent only to the endpoint's scheme, host and port; a redirect within
// the endpoint keeps it.
func TestHostileTokenSameOriginOnly(t *testing.T) {
	const token = "hf_secret"
	var leaked atomic.Value
	leaked.Store("")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			leaked.Store(a)
		}
		w.Write([]byte("0123456789"))
	}))
	defer other.Close()
	// Same host (127.0.0.1), another port.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/away.bin"):
			http.Redirect(w, r, other.URL+"/blob", http.StatusFound)
		case strings.HasSuffix(r.URL.Path, "/home.bin"):
			http.Redirect(w, r, srv.URL+"/blob", http.StatusFound)
		case r.URL.Path == "/blob":
			if r.Header.Get("Authorization") != "Bearer "+token {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			w.Write([]byte("0123456789"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := client(t, srv)
	c.Token = token
	dir := t.TempDir()
	if err := c.Download(context.Background(), "org/x", "main", File{Path: "away.bin", Size: 10}, filepath.Join(dir, "a"), nil); err != nil {
		t.Fatal(err)
	}
	if l := leaked.Load().(string); l != "" {
		t.Errorf("token sent to another port of the same host: %q", l)
	}
	if err := c.Download(context.Background(), "org/x", "main", File{Path: "home.bin", Size: 10}, filepath.Join(dir, "b"), nil); err != nil {
		t.Errorf("redirect within the endpoint lost the token: %v", err)
	}
	// A plain URL elsewhere never gets the token.
	if err := c.FetchURL(context.Background(), other.URL+"/direct", filepath.Join(dir, "c"), nil); err != nil {
		t.Fatal(err)
	}
	if l := leaked.Load().(string); l != "" {
		t.Errorf("token sent to a foreign URL: %q", l)
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"https://h/x", "https://h:443/y", true},
		{"http://h/x", "http://H:80/y", true},
		{"http://h:1/x", "http://h:2/x", false},
		{"http://h/x", "https://h/x", false},
		{"https://h/x", "https://g/x", false},
	} {
		c := &Client{Endpoint: tc.a}
		u, _ := http.NewRequest("GET", tc.b, nil)
		if got := c.sameOrigin(u.URL); got != tc.same {
			t.Errorf("sameOrigin(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

// FuzzListing feeds hostile bytes to the listing reader (one page of the tree
// API) and to the name validators: nothing panics, and whatever is accepted
// stays under the directory it is joined to.
func FuzzListing(f *testing.F) {
	f.Add([]byte(`[{"type":"file","path":"../../../../x.ckpt","size":4}]`))
	f.Add([]byte(`[{"type":"file","path":"a/b.parquet","size":4,"lfs":{"oid":"` + strings.Repeat("ab", 32) + `","size":4}}]`))
	f.Add([]byte(`[{"type":"directory","path":".."},{"type":"file","path":"a\\..\\..\\x","size":-1}]`))
	f.Add([]byte(`[{"type":"file","path":"refs/pr/1","size":9223372036854775807}]`))
	f.Add([]byte(`{"type":"file"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := filepath.FromSlash("/cache/root")
		under := func(p string) bool {
			rel, err := filepath.Rel(root, p)
			return err == nil && filepath.IsLocal(rel)
		}
		entries, err := decodePage(strings.NewReader(string(data)))
		if err == nil {
			for _, e := range entries {
				file, ok, err := listEntry(e)
				if err != nil || !ok {
					continue
				}
				if file.Size < 0 || file.Size > MaxFileSize {
					t.Fatalf("accepted size %d", file.Size)
				}
				p, err := LocalPath(root, file.Path)
				if err != nil || !under(p) {
					t.Fatalf("accepted %q joins to %q (%v)", file.Path, p, err)
				}
			}
		}
		s := string(data)
		if ValidateRevision(s) == nil && ValidateRepoID("org/name") == nil {
			p, err := CachePath(root, "models", "org/name", s)
			if err != nil || !under(p) {
				t.Fatalf("revision %q joins to %q (%v)", s, p, err)
			}
		}
		if ValidateRepoID(s) == nil {
			p, err := CachePath(root, "models", s, "main")
			if err != nil || !under(p) || strings.Count(s, "/") > 1 {
				t.Fatalf("repository %q joins to %q (%v)", s, p, err)
			}
		}
	})
}
