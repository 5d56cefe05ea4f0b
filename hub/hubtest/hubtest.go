// Package hubtest is a mock Hugging Face hub for tests: it accepts pushes
// (repository and branch creation, the LFS batch API, the NDJSON commit API)
// and serves what was pushed through the tree and resolve APIs.
package hubtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// PushHub is a mock Hugging Face hub that accepts pushes (repository and branch creation,
// the LFS batch API with basic transfers and verify, the NDJSON commit API)
// and serves what was pushed through the tree and resolve APIs.
type PushHub struct {
	t       *testing.T
	Srv     *httptest.Server
	Store   *httptest.Server // the LFS object store, another origin (as the hub's S3 is)
	token   string
	Mu      sync.Mutex
	Repos   map[string]map[string]map[string][]byte // repo -> revision -> path -> bytes
	Private map[string]bool
	lfs     map[string][]byte // oid -> bytes
	Puts    int               // LFS uploads received
	SawAuth []string          // Authorization headers seen on LFS uploads
}

// NewPushHub starts a PushHub that requires token; it stops with the test.
func NewPushHub(t *testing.T, token string) *PushHub {
	h := &PushHub{t: t, token: token, Repos: map[string]map[string]map[string][]byte{}, Private: map[string]bool{}, lfs: map[string][]byte{}}
	h.Srv = httptest.NewServer(h)
	h.Store = httptest.NewServer(h)
	t.Cleanup(h.Srv.Close)
	t.Cleanup(h.Store.Close)
	return h
}

func (h *PushHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.Mu.Lock()
	defer h.Mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/lfs-store/") {
		h.lfsPut(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/api/repos/create":
		h.create(w, r)
	case strings.HasSuffix(p, ".git/info/lfs/objects/batch"):
		h.batch(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".git/info/lfs/objects/batch"))
	case strings.HasPrefix(p, "/lfs-verify/"):
		w.Write([]byte("{}"))
	case strings.HasPrefix(p, "/api/models/"):
		h.api(w, r, strings.TrimPrefix(p, "/api/models/"))
	default:
		h.resolve(w, r)
	}
}

func (h *PushHub) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Type, Name, Organization string
		Private                  bool
	}
	json.NewDecoder(r.Body).Decode(&req)
	repo := req.Organization + "/" + req.Name
	if req.Type != "model" || h.Repos[repo] != nil {
		http.Error(w, "exists", http.StatusConflict)
		return
	}
	h.Repos[repo] = map[string]map[string][]byte{"main": {}}
	h.Private[repo] = req.Private
	w.Write([]byte(`{"url":"x"}`))
}

func (h *PushHub) batch(w http.ResponseWriter, r *http.Request, repo string) {
	var req struct {
		Operation string
		Objects   []struct {
			OID  string
			Size int64
		}
	}
	json.NewDecoder(r.Body).Decode(&req)
	var out []map[string]any
	for _, o := range req.Objects {
		obj := map[string]any{"oid": o.OID, "size": o.Size}
		if _, ok := h.lfs[o.OID]; !ok {
			obj["actions"] = map[string]any{
				"upload": map[string]any{"href": h.Store.URL + "/lfs-store/" + o.OID, "header": map[string]string{"X-Upload-Ticket": "t"}},
				"verify": map[string]any{"href": h.Srv.URL + "/lfs-verify/" + o.OID}}
		}
		out = append(out, obj)
	}
	w.Header().Set("Content-Type", "application/vnd.git-lfs+json")
	json.NewEncoder(w).Encode(map[string]any{"objects": out})
}

func (h *PushHub) lfsPut(w http.ResponseWriter, r *http.Request) {
	oid := strings.TrimPrefix(r.URL.Path, "/lfs-store/")
	data, _ := io.ReadAll(r.Body)
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != oid || r.Header.Get("X-Upload-Ticket") != "t" {
		http.Error(w, "bad object", http.StatusBadRequest)
		return
	}
	h.SawAuth = append(h.SawAuth, r.Header.Get("Authorization"))
	h.lfs[oid] = data
	h.Puts++
}

func (h *PushHub) api(w http.ResponseWriter, r *http.Request, rest string) {
	for repo, revs := range h.Repos {
		tail, ok := strings.CutPrefix(rest, repo+"/")
		if !ok {
			continue
		}
		kind, rev, _ := strings.Cut(tail, "/")
		switch kind {
		case "branch":
			if revs[rev] != nil {
				http.Error(w, "exists", http.StatusConflict)
				return
			}
			revs[rev] = map[string][]byte{}
			for k, v := range revs["main"] {
				revs[rev][k] = v
			}
			w.Write([]byte("{}"))
		case "commit":
			h.commit(w, r, revs[rev])
		case "tree":
			h.tree(w, revs[strings.TrimSuffix(rev, "?recursive=true")])
		default:
			http.NotFound(w, r)
		}
		return
	}
	http.NotFound(w, r)
}

func (h *PushHub) commit(w http.ResponseWriter, r *http.Request, files map[string][]byte) {
	if files == nil || r.Header.Get("Content-Type") != "application/x-ndjson" {
		http.Error(w, "no such revision or bad content type", http.StatusBadRequest)
		return
	}
	dec := json.NewDecoder(r.Body)
	for dec.More() {
		var line struct {
			Key   string
			Value struct{ Path, Content, Encoding, Oid, Algo, Summary string }
		}
		if err := dec.Decode(&line); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch line.Key {
		case "file":
			data, err := base64.StdEncoding.DecodeString(line.Value.Content)
			if err != nil || line.Value.Encoding != "base64" {
				http.Error(w, "bad content", http.StatusBadRequest)
				return
			}
			files[line.Value.Path] = data
		case "lfsFile":
			data, ok := h.lfs[line.Value.Oid]
			if !ok || line.Value.Algo != "sha256" {
				http.Error(w, "LFS object not uploaded", http.StatusBadRequest)
				return
			}
			files[line.Value.Path] = data
		}
	}
	w.Write([]byte(`{"commitOid":"abc123","commitUrl":"x"}`))
}

func (h *PushHub) tree(w http.ResponseWriter, files map[string][]byte) {
	out := []map[string]any{}
	for p, data := range files {
		sum := sha256.Sum256(data)
		out = append(out, map[string]any{"type": "file", "path": p, "size": len(data),
			"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}})
	}
	json.NewEncoder(w).Encode(out)
}

func (h *PushHub) resolve(w http.ResponseWriter, r *http.Request) {
	for repo, revs := range h.Repos {
		if tail, ok := strings.CutPrefix(r.URL.Path, "/"+repo+"/resolve/"); ok {
			rev, p, _ := strings.Cut(tail, "/")
			if data, ok := revs[rev][p]; ok {
				w.Write(data)
				return
			}
		}
	}
	http.NotFound(w, r)
}
