package hub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Limits on a push; README's limits table lists them.
var (
	// MaxInlineSize is the largest file sent inside the commit (base64);
	// larger files, and every file that is not text, go through LFS.
	MaxInlineSize int64 = 1 << 20
	// MaxPushFiles caps the files of one push.
	MaxPushFiles = 100_000
	// MaxAPIResponse caps the bytes of one JSON answer of the push APIs.
	MaxAPIResponse int64 = 16 << 20
)

// PushOptions configure Push.
type PushOptions struct {
	Repo     string   // org/name, a model repository
	Revision string   // branch (default main); created from main when missing
	Dir      string   // every regular file under it is uploaded, paths relative to it
	Files    []string // when set, only these slash-separated paths under Dir
	Private  bool     // when the repository is created
	Message  string   // commit summary
}

// pushFile is one local file to upload.
type pushFile struct {
	Path   string // slash-separated, relative to Dir
	Local  string
	Size   int64
	SHA256 string
	LFS    bool
}

// Push uploads a directory to a model repository of the hub in one commit:
// the repository is created if missing (409 means it exists), the branch too,
// large and binary files go through the LFS batch API (skipped when the hub
// already holds them), and the commit API receives an NDJSON body with the
// small files inline and LFS pointers for the rest. It returns the commit id.
// The token goes only to the endpoint's origin (Client.do), never into logs.
func (c *Client) Push(ctx context.Context, o PushOptions) (string, error) {
	if o.Revision == "" {
		o.Revision = "main"
	}
	if err := validateRef(o.Repo, o.Revision); err != nil {
		return "", err
	}
	files, err := pushFiles(o.Dir, o.Files)
	if err != nil {
		return "", err
	}
	if err := c.createRepo(ctx, o.Repo, o.Private); err != nil {
		return "", err
	}
	if o.Revision != "main" {
		if err := c.createBranch(ctx, o.Repo, o.Revision); err != nil {
			return "", err
		}
	}
	if err := c.uploadLFS(ctx, o.Repo, o.Revision, files); err != nil {
		return "", err
	}
	return c.commit(ctx, o, files)
}

// pushFiles lists and hashes the regular files under dir (or only those of
// only); symbolic links and other special files are refused, and every path
// must pass ValidatePath.
func pushFiles(dir string, only []string) ([]pushFile, error) {
	if only != nil {
		return pushListed(dir, only)
	}
	var out []pushFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("hub: push %s: %s is not a regular file", dir, p)
		}
		if len(out) >= MaxPushFiles {
			return fmt.Errorf("hub: push %s: more than %d files", dir, MaxPushFiles)
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := hashLocal(p, filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub: push %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("hub: push %s: no files", dir)
	}
	return out, nil
}

// pushListed hashes the listed files of dir.
func pushListed(dir string, only []string) ([]pushFile, error) {
	if len(only) > MaxPushFiles {
		return nil, fmt.Errorf("hub: push %s: more than %d files", dir, MaxPushFiles)
	}
	var out []pushFile
	for _, rel := range only {
		if err := ValidatePath(rel); err != nil {
			return nil, fmt.Errorf("hub: push %s: %w", dir, err)
		}
		local := filepath.Join(dir, filepath.FromSlash(rel))
		if fi, err := os.Lstat(local); err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("hub: push %s: %s is not a regular file (%v)", dir, rel, err)
		}
		f, err := hashLocal(local, rel)
		if err != nil {
			return nil, fmt.Errorf("hub: push %s: %w", dir, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func hashLocal(local, rel string) (pushFile, error) {
	if err := ValidatePath(rel); err != nil {
		return pushFile{}, err
	}
	fh, err := os.Open(local)
	if err != nil {
		return pushFile{}, err
	}
	defer fh.Close()
	h := sha256.New()
	head := &bytes.Buffer{}
	n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{head, 8 << 10}), fh)
	if err != nil {
		return pushFile{}, fmt.Errorf("%s: %w", local, err)
	}
	return pushFile{Path: rel, Local: local, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)),
		LFS: n > MaxInlineSize || bytes.IndexByte(head.Bytes(), 0) >= 0}, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// postJSON sends v to u and decodes the answer into out (when non-nil).
func (c *Client) postJSON(ctx context.Context, u, ctype string, v, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Accept", ctype)
		}
		return req, err
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxAPIResponse)).Decode(out); err != nil {
		return fmt.Errorf("hub: %s: bad answer: %w", u, err)
	}
	return nil
}

func isStatus(err error, status int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == status
}

// createRepo creates the model repository; one that exists (409) is fine.
func (c *Client) createRepo(ctx context.Context, repo string, private bool) error {
	org, name, _ := strings.Cut(repo, "/")
	err := c.postJSON(ctx, c.Endpoint+"/api/repos/create", "application/json",
		map[string]any{"type": "model", "name": name, "organization": org, "private": private}, nil)
	if isStatus(err, http.StatusConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hub: create repository %s: %w", repo, err)
	}
	return nil
}

// createBranch creates revision from main; one that exists (409) is fine.
func (c *Client) createBranch(ctx context.Context, repo, revision string) error {
	err := c.postJSON(ctx, fmt.Sprintf("%s/api/models/%s/branch/%s", c.Endpoint, repo, url.PathEscape(revision)), "application/json", map[string]any{}, nil)
	if isStatus(err, http.StatusConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hub: create branch %s of %s: %w", revision, repo, err)
	}
	return nil
}

// lfsAction is one action of an LFS batch answer.
type lfsAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header"`
}

type lfsBatchAnswer struct {
	Objects []struct {
		OID     string `json:"oid"`
		Size    int64  `json:"size"`
		Actions map[string]lfsAction
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"objects"`
}

const lfsType = "application/vnd.git-lfs+json"

// uploadLFS asks the LFS batch API where each LFS file goes and uploads the
// ones the hub does not hold yet (objects without an upload action).
func (c *Client) uploadLFS(ctx context.Context, repo, revision string, files []pushFile) error {
	var objs []map[string]any
	byOID := map[string]pushFile{}
	for _, f := range files {
		if f.LFS {
			objs = append(objs, map[string]any{"oid": f.SHA256, "size": f.Size})
			byOID[f.SHA256] = f
		}
	}
	if len(objs) == 0 {
		return nil
	}
	var ans lfsBatchAnswer
	req := map[string]any{"operation": "upload", "transfers": []string{"basic"}, "hash_algo": "sha256",
		"objects": objs, "ref": map[string]string{"name": "refs/heads/" + revision}}
	if err := c.postJSON(ctx, fmt.Sprintf("%s/%s.git/info/lfs/objects/batch", c.Endpoint, repo), lfsType, req, &ans); err != nil {
		return fmt.Errorf("hub: LFS batch for %s: %w", repo, err)
	}
	for _, o := range ans.Objects {
		f, ok := byOID[o.OID]
		if !ok {
			return fmt.Errorf("hub: LFS batch for %s: answer names object %q that was not asked for", repo, o.OID)
		}
		if o.Error != nil {
			return fmt.Errorf("hub: LFS batch for %s: %s: %d %s", repo, f.Path, o.Error.Code, o.Error.Message)
		}
		if err := c.lfsTransfer(ctx, f, o.Actions); err != nil {
			return fmt.Errorf("hub: LFS upload of %s to %s: %w", f.Path, repo, err)
		}
	}
	return nil
}

// lfsTransfer runs the upload and verify actions of one object.
func (c *Client) lfsTransfer(ctx context.Context, f pushFile, actions map[string]lfsAction) error {
	up, ok := actions["upload"]
	if !ok {
		return nil // the hub has it
	}
	if err := checkHref(up.Href); err != nil {
		return err
	}
	resp, err := c.do(ctx, func() (*http.Request, error) {
		fh, err := os.Open(f.Local)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequest(http.MethodPut, up.Href, fh)
		if err != nil {
			fh.Close()
			return nil, err
		}
		req.ContentLength = f.Size
		for k, v := range up.Header {
			if !strings.EqualFold(k, "Authorization") || !c.sameOrigin(req.URL) {
				req.Header.Set(k, v)
			}
		}
		return req, nil
	})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if v, ok := actions["verify"]; ok {
		if err := checkHref(v.Href); err != nil {
			return err
		}
		return c.postJSON(ctx, v.Href, lfsType, map[string]any{"oid": f.SHA256, "size": f.Size}, nil)
	}
	return nil
}

// checkHref accepts only http(s) URLs from an LFS answer.
func checkHref(h string) error {
	u, err := url.Parse(h)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("LFS action URL %q: want an http(s) URL", h)
	}
	return nil
}

// commit sends the NDJSON commit: a header, then one line per file (inline
// base64 content, or an LFS pointer).
func (c *Client) commit(ctx context.Context, o PushOptions, files []pushFile) (string, error) {
	msg := o.Message
	if msg == "" {
		msg = "Upload with mdlm checkpoint push"
	}
	var body bytes.Buffer
	w := bufio.NewWriter(&body)
	enc := json.NewEncoder(w)
	enc.Encode(map[string]any{"key": "header", "value": map[string]string{"summary": msg, "description": ""}})
	for _, f := range files {
		if f.LFS {
			enc.Encode(map[string]any{"key": "lfsFile", "value": map[string]any{"path": f.Path, "algo": "sha256", "oid": f.SHA256, "size": f.Size}})
			continue
		}
		raw, err := os.ReadFile(f.Local)
		if err != nil {
			return "", fmt.Errorf("hub: push %s: %w", f.Local, err)
		}
		enc.Encode(map[string]any{"key": "file", "value": map[string]string{"path": f.Path, "encoding": "base64", "content": base64.StdEncoding.EncodeToString(raw)}})
	}
	w.Flush()
	u := fmt.Sprintf("%s/api/models/%s/commit/%s", c.Endpoint, o.Repo, url.PathEscape(o.Revision))
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body.Bytes()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		return req, err
	})
	if err != nil {
		return "", fmt.Errorf("hub: commit to %s@%s: %w", o.Repo, o.Revision, err)
	}
	defer resp.Body.Close()
	var ans struct {
		CommitOID string `json:"commitOid"`
		CommitURL string `json:"commitUrl"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxAPIResponse)).Decode(&ans); err != nil {
		return "", fmt.Errorf("hub: commit to %s@%s: bad answer: %w", o.Repo, o.Revision, err)
	}
	if c.Log != nil {
		c.Log.Info("pushed to the hub", "repo", o.Repo, "revision", o.Revision, "commit", ans.CommitOID, "files", len(files))
	}
	return ans.CommitOID, nil
}
