// Package hub is a small Hugging Face Hub client for dataset and model
// repositories: list a repository's files at a revision (with sizes and the
// sha256 of LFS files), resolve download URLs, and download files in parallel
// with HTTP Range resume, sha256 verification, and retries with backoff on 429
// and 5xx. It honours $HF_ENDPOINT and $HF_TOKEN; the token is sent only in the
// Authorization header and never logged.
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is used when $HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

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
// exponential backoff (honouring Retry-After). A 2xx (or 206) response is
// returned open; anything else is an *HTTPError.
func (c *Client) do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	delay := c.Backoff
	if delay <= 0 {
		delay = time.Second
	}
	retries := c.MaxRetries
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := c.HTTP.Do(req.WithContext(ctx))
		var status int
		if err == nil {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				return resp, nil
			}
			status = resp.StatusCode
			wait := retryAfter(resp.Header.Get("Retry-After"))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if !retryable(status) || attempt >= retries {
				return nil, &HTTPError{Status: status, URL: req.URL.String(), Hint: hint(status)}
			}
			if wait > 0 {
				delay = wait
			}
		} else if ctx.Err() != nil || attempt >= retries {
			return nil, fmt.Errorf("hub: %s: %w", req.URL, err)
		}
		if c.Log != nil {
			c.Log.Warn("hub request failed, retrying", "url", req.URL.String(), "status", status, "err", err, "in", delay)
		}
		jitter := time.Duration(rand.Int64N(int64(delay)/4 + 1))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay + jitter):
		}
		delay *= 2
	}
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second
	}
	return 0
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
	return c.list(ctx, fmt.Sprintf("%s/api/datasets/%s/tree/%s?recursive=true", c.Endpoint, repo, url.PathEscape(revision)), repo, revision, nil)
}

// ListModelFiles lists every file of a model repository at revision; the files
// download from the model's resolve URLs.
func (c *Client) ListModelFiles(ctx context.Context, repo, revision string) ([]File, error) {
	return c.list(ctx, fmt.Sprintf("%s/api/models/%s/tree/%s?recursive=true", c.Endpoint, repo, url.PathEscape(revision)), repo, revision,
		func(path string) string { return c.ResolveModelURL(repo, revision, path) })
}

func (c *Client) list(ctx context.Context, next, repo, revision string, resolve func(string) string) ([]File, error) {
	var files []File
	for next != "" {
		u := next
		resp, err := c.do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) })
		if err != nil {
			return nil, fmt.Errorf("list %s@%s: %w", repo, revision, err)
		}
		var entries []treeEntry
		err = json.NewDecoder(resp.Body).Decode(&entries)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list %s@%s: bad listing from %s: %w", repo, revision, u, err)
		}
		for _, e := range entries {
			if e.Type != "file" {
				continue
			}
			f := File{Path: e.Path, Size: e.Size}
			if e.LFS != nil {
				f.SHA256, f.Size = e.LFS.OID, e.LFS.Size
			}
			if resolve != nil {
				f.url = resolve(f.Path)
			}
			files = append(files, f)
		}
		next = nextLink(resp.Header.Get("Link"))
	}
	return files, nil
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
	return fmt.Sprintf("%s/datasets/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(revision), path)
}

// ResolveModelURL is the download URL of a model file.
func (c *Client) ResolveModelURL(repo, revision, path string) string {
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(revision), path)
}

// ErrChecksum reports a sha256 mismatch; the partial download is discarded.
var ErrChecksum = errors.New("hub: checksum mismatch")

// Download fetches one file to dest: bytes go to dest.part first, an existing
// .part is resumed with a Range request, the result is checked against the
// listed size and LFS sha256, and only then renamed to dest. A dest that exists
// with the right size and hash is kept.
func (c *Client) Download(ctx context.Context, repo, revision string, f File, dest string, progress func(int64)) error {
	if ok, _ := verify(dest, f); ok {
		if progress != nil {
			progress(f.Size)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	part := dest + ".part"
	u := f.url
	if u == "" {
		u = c.ResolveURL(repo, revision, f.Path)
	}
	for attempt := 0; ; attempt++ {
		err := c.fetch(ctx, u, part, progress)
		if err == nil {
			break
		}
		var he *HTTPError
		if errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable && attempt == 0 {
			os.Remove(part) // the partial file does not fit: start over once
			continue
		}
		return fmt.Errorf("download %s: %w", f.Path, err)
	}
	if ok, got := verify(part, f); !ok {
		os.Remove(part)
		return fmt.Errorf("download %s: %w: got %s, the hub lists size %d sha256 %s", f.Path, ErrChecksum, got, f.Size, f.SHA256)
	}
	return os.Rename(part, dest)
}

// fetch appends the rest of u to part (Range from its current size).
func (c *Client) fetch(ctx context.Context, u, part string, progress func(int64)) error {
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
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
	}
	out, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return err
	}
	if progress != nil {
		progress(have)
	}
	_, err = io.Copy(out, &progressReader{r: resp.Body, fn: progress})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("transfer interrupted (rerun resumes from %s): %w", part, err)
	}
	return nil
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

// verify checks size and (for LFS files) sha256; it returns the observed digest.
func verify(path string, f File) (bool, string) {
	fh, err := os.Open(path)
	if err != nil {
		return false, ""
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
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
// workers parallel transfers; the first error cancels the rest.
func (c *Client) DownloadAll(ctx context.Context, repo, revision string, files []File, dir string, workers int, progress func(int64)) error {
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
				if err := c.Download(ctx, repo, revision, f, filepath.Join(dir, filepath.FromSlash(f.Path)), progress); err != nil {
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
// atomic rename as Download (no checksum is known for plain URLs; a size, when
// the server sends one, is checked).
func (c *Client) FetchURL(ctx context.Context, u, dest string, progress func(int64)) error {
	if st, err := os.Stat(dest); err == nil && st.Size() > 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	part := dest + ".part"
	if err := c.fetch(ctx, u, part, progress); err != nil {
		return fmt.Errorf("download %s: %w", u, err)
	}
	return os.Rename(part, dest)
}
