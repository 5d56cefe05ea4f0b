package artifact

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/internal/filehash"
)

// StatCacheName is the artifact directory's stat cache: for each file, the
// identity (device, inode, size, mtime, ctime) it had when its sha256 was last
// computed. It is not part of the manifest or the digest; deleting it only costs
// a full re-hash. Like git's index, an entry is trusted only when the file's
// ctime is strictly older than the cache file's own mtime, so a change in the
// same clock tick as the recording is never missed.
const StatCacheName = ".stat-cache.json"

type statEntry struct {
	filehash.Identity
	SHA256 string `json:"sha256"`
}

type statCache struct {
	entries map[string]statEntry
	written int64 // the cache file's mtime, ns
}

func loadStatCache(dir string) statCache {
	path := filepath.Join(dir, StatCacheName)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() > MaxManifestBytes {
		return statCache{}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return statCache{}
	}
	var c statCache
	if json.Unmarshal(raw, &c.entries) != nil {
		return statCache{}
	}
	c.written = fi.ModTime().UnixNano()
	return c
}

// trusts reports whether f's recorded identity still describes the file.
func (c statCache) trusts(f File, id filehash.Identity) bool {
	e, ok := c.entries[f.Path]
	return ok && e.SHA256 == f.SHA256 && e.Identity == id && id.Ino != 0 && id.CtimeNs < c.written
}

// saveStatCache records the current identity of every file (best effort: a
// read-only artifact simply keeps being hashed). The file is renamed into place
// but not fsynced: it is a cache, and a lost or stale one only costs a re-hash.
func saveStatCache(dir string, files []File) {
	entries := make(map[string]statEntry, len(files))
	for _, f := range files {
		id, err := filehash.Stat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil || id.Size != f.Size {
			return
		}
		entries[f.Path] = statEntry{Identity: id, SHA256: f.SHA256}
	}
	data, err := json.Marshal(entries)
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, StatCacheName+".tmp-*")
	if err != nil {
		return
	}
	tmp.Chmod(0o644) // readable by whoever may verify a shared artifact
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, StatCacheName))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}
