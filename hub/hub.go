// Package hub is a small Hugging Face Hub client for dataset and model
// repositories: list a repository's files at a revision (with sizes and the
// sha256 of LFS files), resolve download URLs, and download files in parallel
// with HTTP Range resume, sha256 verification, and retries with backoff on 429
// and 5xx. It honours $HF_ENDPOINT and $HF_TOKEN; the token is sent only in the
// Authorization header, only to the endpoint's own scheme, host and port, and
// never logged.
//
// Everything the hub sends is treated as hostile (issue 19): repository ids,
// revisions and listed paths are validated before they become URLs or paths
// (validate.go), listings and transfers are bounded, files are written only
// under the directory they were asked for (an os.Root), and waits asked for by
// Retry-After are capped.
package hub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is used when $HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

// Limits on what the hub may ask of us; README's limits table lists them.
// They are variables so tests can lower them.
var (
	// MaxRetryWait caps one wait between retries, whether it comes from the
	// backoff or from the server's Retry-After.
	MaxRetryWait = 60 * time.Second
	// MaxRetryTotal caps the time one request spends waiting between retries.
	MaxRetryTotal = 10 * time.Minute
	// MaxListingPage caps the bytes of one page of a tree listing.
	MaxListingPage int64 = 64 << 20
	// MaxListedFiles caps the files of one listing (all pages together).
	MaxListedFiles = 1_000_000
	// MaxFileSize caps the size a listing may give one file.
	MaxFileSize int64 = 1 << 40
	// MaxUnlistedSize caps a download whose size no listing gives (FetchURL).
	MaxUnlistedSize int64 = 16 << 30
)

// Client talks to one hub endpoint.
type Client struct {
	Endpoint   string
	Token      string
	HTTP       *http.Client
	MaxRetries int           // per request, on 429/5xx/network errors (default 5)
	Backoff    time.Duration // first retry delay, doubled each time (default 1s)
	Log        *slog.Logger
}

// NewClient reads $HF_ENDPOINT and $HF_TOKEN.
func NewClient() *Client {
	ep := os.Getenv("HF_ENDPOINT")
	if ep == "" {
		ep = DefaultEndpoint
	}
	return &Client{Endpoint: strings.TrimRight(ep, "/"), Token: os.Getenv("HF_TOKEN"), HTTP: &http.Client{},
		MaxRetries: 5, Backoff: time.Second, Log: slog.Default()}
}

// File is one file of a repository.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // LFS object id; empty for small git files
	url    string // where it downloads from (set by the listing of a model repository)
}

// HTTPError is a non-success answer.
type HTTPError struct {
	Status int
	URL    string
	Hint   string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("hub: %s: HTTP %d", e.URL, e.Status)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func hint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication required or token invalid: set HF_TOKEN to a valid access token"
	case http.StatusForbidden:
		return "access denied: the repository may be gated (accept its terms on the hub) or the token lacks read access"
	case http.StatusNotFound:
		return "not found: check the repository id, the revision and the file path"
	case http.StatusRequestedRangeNotSatisfiable:
		return "the server refused the resume range"
	}
	return ""
}

func retryable(status int) bool { return status == http.StatusTooManyRequests || status >= 500 }

// do sends a request built by mk, retrying on 429, 5xx and transport errors with
// exponential backoff (honouring Retry-After, capped by MaxRetryWait per wait
// and MaxRetryTotal in all). A 2xx (or 206) response is returned open;
// anything else is an *HTTPError.
func (c *Client) do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	hc := c.httpClient()
	var waited time.Duration
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		if c.Token != "" && c.sameOrigin(req.URL) {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := hc.Do(req.WithContext(ctx))
		var status int
		delay := backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
		if err == nil {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return resp, nil
			}
			status = resp.StatusCode
			asked := retryAfter(resp.Header.Get("Retry-After"), time.Now())
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if !retryable(status) || attempt >= c.MaxRetries {
				return nil, &HTTPError{Status: status, URL: req.URL.String(), Hint: hint(status)}
			}
			if asked > 0 {
				delay = asked
			}
		} else if ctx.Err() != nil || attempt >= c.MaxRetries {
			return nil, fmt.Errorf("hub: %s: %w", req.URL, err)
		}
		delay = c.capWait(req.URL, delay)
		if waited+delay > MaxRetryTotal {
			return nil, fmt.Errorf("hub: %s: giving up after %d attempts (status %d, err %v): the next wait of %s would pass the %s retry budget",
				req.URL, attempt+1, status, err, delay, MaxRetryTotal)
		}
		if c.Log != nil {
			c.Log.Warn("hub request failed, retrying", "url", req.URL.String(), "status", status, "err", err, "in", delay)
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
		waited += delay
		backoff = min(2*backoff, MaxRetryWait)
	}
}

// capWait bounds one wait by MaxRetryWait, saying so when the server asked for more.
func (c *Client) capWait(u *url.URL, d time.Duration) time.Duration {
	if d <= MaxRetryWait {
		return d
	}
	if c.Log != nil {
		c.Log.Warn("hub asked for a long wait, capping it", "url", u.String(), "asked", d, "cap", MaxRetryWait)
	}
	return MaxRetryWait
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3 as net/http parses it). Garbage, negative values and
// dates in the past give 0 (use the backoff); huge values saturate rather than
// overflow (the caller caps them).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > int64(24*time.Hour/time.Second) {
			return 24 * time.Hour
		}
		return time.Duration(s) * time.Second
	} else if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(v, "-") {
		return 24 * time.Hour
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}

// httpClient is c.HTTP with a redirect policy that drops the Authorization
// header whenever a redirect leaves the endpoint's origin (scheme, host and
// port): net/http alone keeps it for another port of the same host.
func (c *Client) httpClient() *http.Client {
	base := c.HTTP
	if base == nil {
		base = http.DefaultClient
	}
	hc := *base
	prev := base.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !c.sameOrigin(req.URL) || len(via) > 0 && !sameOrigin(req.URL, via[0].URL) {
			req.Header.Del("Authorization")
		}
		if prev != nil {
			return prev(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &hc
}

// sameOrigin reports whether u has the endpoint's scheme, host and port.
func (c *Client) sameOrigin(u *url.URL) bool {
	ep, err := url.Parse(c.Endpoint)
	return err == nil && sameOrigin(u, ep)
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// treeEntry is one element of the hub's tree API.
type treeEntry struct {
	Type string `json:"type"`
	Path string `json:"path"`
	Size int64  `json:"size"`
	LFS  *struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	} `json:"lfs"`
}

// ListFiles lists every file of a dataset repository at revision (a branch, tag
// or commit; "refs/convert/parquet" works too), following pagination.
func (c *Client) ListFiles(ctx context.Context, repo, revision string) ([]File, error) {
	if err := validateRef(repo, revision); err != nil {
		return nil, err
	}
	return c.list(ctx, fmt.Sprintf("%s/api/datasets/%s/tree/%s?recursive=true", c.Endpoint, repo, url.PathEscape(revision)), repo, revision, nil)
}

// ListModelFiles lists every file of a model repository at revision; the files
// download from the model's resolve URLs.
func (c *Client) ListModelFiles(ctx context.Context, repo, revision string) ([]File, error) {
	if err := validateRef(repo, revision); err != nil {
		return nil, err
	}
	return c.list(ctx, fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", c.Endpoint, repo, url.PathEscape(revision)), repo, revision,
		func(path string) string { return c.ResolveModelURL(repo, revision, path) })
}

func validateRef(repo, revision string) error {
	if err := ValidateRepoID(repo); err != nil {
		return err
	}
	return ValidateRevision(revision)
}

// list follows the pages of a listing. Every entry is checked (listEntry); a
// hostile one fails the whole listing, naming the repository and the entry.
func (c *Client) list(ctx context.Context, next, repo, revision string, resolve func(string) string) ([]File, error) {
	var files []File
	seen := map[string]bool{}
	for page := 0; next != ""; page++ {
		u := next
		resp, err := c.do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) })
		if err != nil {
			return nil, fmt.Errorf("list %s@%s: %w", repo, revision, err)
		}
		entries, err := decodePage(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list %s@%s: bad listing from %s: %w", repo, revision, u, err)
		}
		for _, e := range entries {
			f, ok, err := listEntry(e)
			if err != nil {
				return nil, fmt.Errorf("list %s@%s: refusing the listing: %w", repo, revision, err)
			}
			if !ok {
				continue
			}
			if seen[f.Path] {
				return nil, fmt.Errorf("list %s@%s: refusing the listing: %q is listed twice", repo, revision, f.Path)
			}
			seen[f.Path] = true
			if len(files) >= MaxListedFiles {
				return nil, fmt.Errorf("list %s@%s: more than %d files", repo, revision, MaxListedFiles)
			}
			if resolve != nil {
				f.url = resolve(f.Path)
			}
			files = append(files, f)
		}
		if next, err = c.nextPage(resp, u); err != nil {
			return nil, fmt.Errorf("list %s@%s: %w", repo, revision, err)
		}
	}
	return files, nil
}

// decodePage reads one page of a tree listing, at most MaxListingPage bytes.
func decodePage(body io.Reader) ([]treeEntry, error) {
	lr := &io.LimitedReader{R: body, N: MaxListingPage + 1}
	var entries []treeEntry
	err := json.NewDecoder(lr).Decode(&entries)
	if lr.N <= 0 {
		return nil, fmt.Errorf("page larger than %d bytes", MaxListingPage)
	}
	return entries, err
}

// listEntry turns a tree entry into a File; ok is false for directories.
func listEntry(e treeEntry) (File, bool, error) {
	if e.Type != "file" {
		return File{}, false, nil
	}
	if err := ValidatePath(e.Path); err != nil {
		return File{}, false, fmt.Errorf("entry %q: %w", e.Path, err)
	}
	f := File{Path: e.Path, Size: e.Size}
	if e.LFS != nil {
		f.SHA256, f.Size = e.LFS.OID, e.LFS.Size
		if !isSHA256(f.SHA256) {
			return File{}, false, fmt.Errorf("entry %q: lfs oid %q is not a sha256", e.Path, f.SHA256)
		}
	}
	if f.Size < 0 || f.Size > MaxFileSize {
		return File{}, false, fmt.Errorf("entry %q: size %d outside 0..%d", e.Path, f.Size, MaxFileSize)
	}
	return f, true, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// nextPage is the rel="next" link of a listing page, resolved against the page
// and refused unless it stays on the endpoint's origin (the token goes there).
func (c *Client) nextPage(resp *http.Response, page string) (string, error) {
	link := nextLink(resp.Header.Get("Link"))
	if link == "" {
		return "", nil
	}
	base, err := url.Parse(page)
	if err != nil {
		return "", err
	}
	u, err := base.Parse(link)
	if err != nil || !c.sameOrigin(u) {
		return "", fmt.Errorf("refusing next-page link %q: not on %s", link, c.Endpoint)
	}
	return u.String(), nil
}

// nextLink extracts rel="next" from a Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		if strings.Contains(part, `rel="next"`) {
			s, e := strings.Index(part, "<"), strings.Index(part, ">")
			if s >= 0 && e > s {
				return part[s+1 : e]
			}
		}
	}
	return ""
}

// ResolveURL is the download URL of a dataset file.
func (c *Client) ResolveURL(repo, revision, path string) string {
	return fmt.Sprintf("%s/datasets/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(revision), escapePath(path))
}

// ResolveModelURL is the download URL of a model file.
func (c *Client) ResolveModelURL(repo, revision, path string) string {
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(revision), escapePath(path))
}

func urlPathEscape(s string) string { return url.PathEscape(s) }

// ErrChecksum reports a sha256 mismatch; the partial download is discarded.
var ErrChecksum = errors.New("hub: checksum mismatch")

// Download fetches one file to dest: bytes go to dest.part first, an existing
// .part is resumed with a Range request, the result is checked against the
// listed size and LFS sha256, and only then renamed to dest. A dest that exists
// with the right size and hash is kept.
func (c *Client) Download(ctx context.Context, repo, revision string, f File, dest string, progress func(int64)) error {
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	defer root.Close()
	return c.downloadIn(ctx, root, filepath.Base(dest), repo, revision, f, progress)
}

// downloadIn is Download confined to root: rel is where the file goes under it.
func (c *Client) downloadIn(ctx context.Context, root *os.Root, rel, repo, revision string, f File, progress func(int64)) error {
	if f.Size < 0 || f.Size > MaxFileSize {
		return fmt.Errorf("download %s: size %d outside 0..%d", f.Path, f.Size, MaxFileSize)
	}
	if ok, _ := verify(root, rel, f); ok {
		if progress != nil {
			progress(f.Size)
		}
		return nil
	}
	if d := path.Dir(filepath.ToSlash(rel)); d != "." {
		if err := root.MkdirAll(filepath.FromSlash(d), 0o755); err != nil {
			return fmt.Errorf("download %s: %w", f.Path, err)
		}
	}
	part := rel + ".part"
	u := f.url
	if u == "" {
		u = c.ResolveURL(repo, revision, f.Path)
	}
	for attempt := 0; ; attempt++ {
		err := c.fetch(ctx, u, root, part, f.Size, progress)
		if err == nil {
			break
		}
		var he *HTTPError
		if errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable && attempt == 0 {
			root.Remove(part) // the partial file does not fit: start over once
			continue
		}
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	if ok, got := verify(root, part, f); !ok {
		root.Remove(part)
		return fmt.Errorf("download %s: %w: got %s, the hub lists size %d sha256 %s", f.Path, ErrChecksum, got, f.Size, f.SHA256)
	}
	if err := root.Rename(part, rel); err != nil {
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	return nil
}

// fetch appends the rest of u to part under root (Range from its current
// size), writing at most size bytes in all (size < 0: MaxUnlistedSize).
func (c *Client) fetch(ctx context.Context, u string, root *os.Root, part string, size int64, progress func(int64)) error {
	var have int64
	if st, err := root.Stat(part); err == nil {
		have = st.Size()
	}
	limit := size
	if limit < 0 {
		limit = MaxUnlistedSize
	}
	if have > limit {
		root.Remove(part)
		have = 0
	}
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err == nil && have > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		}
		return req, err
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if resp.StatusCode != http.StatusPartialContent { // the server sent the whole file
		flags = os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		have = 0
	} else if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != have {
		return fmt.Errorf("server answered the resume from byte %d with Content-Range %q", have, resp.Header.Get("Content-Range"))
	}
	if resp.ContentLength > limit-have {
		return fmt.Errorf("server announces %d more bytes; expected at most %d", resp.ContentLength, limit-have)
	}
	out, err := root.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	if progress != nil {
		progress(have)
	}
	n, err := io.Copy(out, &progressReader{r: io.LimitReader(resp.Body, limit-have+1), fn: progress})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && have+n > limit {
		root.Remove(part)
		return fmt.Errorf("server sent more than %d bytes", limit)
	}
	if err != nil {
		return fmt.Errorf("transfer interrupted (rerun resumes from %s): %w", part, err)
	}
	return nil
}

// rangeStart is the first byte of a "bytes first-last/total" Content-Range.
func rangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

type progressReader struct {
	r  io.Reader
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.fn != nil && n > 0 {
		p.fn(int64(n))
	}
	return n, err
}

// verify checks size and (for LFS files) sha256 of rel under root; it returns
// the observed digest.
func verify(root *os.Root, rel string, f File) (bool, string) {
	fh, err := root.Open(rel)
	if err != nil {
		return false, ""
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil || !st.Mode().IsRegular() {
		return false, ""
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, f.Size+1))
	if err != nil {
		return false, ""
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n != f.Size {
		return false, fmt.Sprintf("size %d", n)
	}
	if f.SHA256 != "" && sum != f.SHA256 {
		return false, "sha256 " + sum
	}
	return true, sum
}

// DownloadAll fetches files into dir (keeping their repository paths) on up to
// workers parallel transfers; the first error cancels the rest. Every path is
// validated first and every write is confined to dir (an os.Root), so a
// hostile listing can neither escape dir nor follow a link out of it.
func (c *Client) DownloadAll(ctx context.Context, repo, revision string, files []File, dir string, workers int, progress func(int64)) error {
	for _, f := range files {
		if err := ValidatePath(f.Path); err != nil {
			return fmt.Errorf("download %s@%s: %w", repo, revision, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download %s@%s: %w", repo, revision, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("download %s@%s: %w", repo, revision, err)
	}
	defer root.Close()
	if workers <= 0 {
		workers = 4
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	jobs := make(chan File)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				if err := c.downloadIn(ctx, root, filepath.FromSlash(f.Path), repo, revision, f, progress); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range files {
		select {
		case jobs <- f:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}

// FetchURL downloads any URL to dest with the same .part resume, retries and
// atomic rename as Download (no checksum is known for plain URLs; at most
// MaxUnlistedSize bytes are accepted, and a size the server announces must fit).
func (c *Client) FetchURL(ctx context.Context, u, dest string, progress func(int64)) error {
	if st, err := os.Stat(dest); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		return nil
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	defer root.Close()
	rel := filepath.Base(dest)
	if err := c.fetch(ctx, u, root, rel+".part", -1, progress); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	if err := root.Rename(rel+".part", rel); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	return nil
}
