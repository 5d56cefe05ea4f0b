// Package artifact reads, writes and verifies typed stage outputs: a directory of
// files plus an artifact.json manifest (see ../shared/spec/pipeline.md) naming the
// artifact type ("checkpoint/v1", ...), every file with its size and sha256, the
// producing stage and its parameters, and the tool version.
//
// Publishing is atomic: files are written into a temporary sibling directory, each
// file is hashed and synced, the manifest is written last, and the directory is
// renamed into place and its parent synced. A crash never leaves a directory that
// looks complete, and a directory without a valid manifest is not an artifact.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ManifestName is the manifest's file name inside an artifact directory.
const ManifestName = "artifact.json"

// ErrNotArtifact means a directory has no readable manifest.
var ErrNotArtifact = errors.New("artifact: not an artifact directory")

// File is one file of an artifact.
type File struct {
	Path   string `json:"path"` // relative, slash-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes an artifact.
type Manifest struct {
	Type    string            `json:"type"` // e.g. "checkpoint/v1"
	Files   []File            `json:"files"`
	Stage   string            `json:"stage,omitempty"`
	Params  map[string]any    `json:"params,omitempty"`
	Inputs  map[string]string `json:"inputs,omitempty"` // input name -> artifact digest
	Tool    string            `json:"tool,omitempty"`
	Backend string            `json:"backend,omitempty"`
	Created time.Time         `json:"created"`
}

// Digest is the sha256 of the canonical file list (paths, sizes and hashes sorted
// by path); it does not depend on where the artifact lives or when it was made.
func (m Manifest) Digest() string {
	files := append([]File(nil), m.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", m.Type)
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Publish creates the artifact directory dir: fill writes the files into a
// temporary directory, then every regular file found there is hashed into m.Files,
// the manifest is written, and the directory is renamed to dir. An existing dir is
// replaced only after the new one is complete.
func Publish(dir string, m Manifest, fill func(tmp string) error) (Manifest, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-*")
	if err != nil {
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if err := os.Chmod(tmp, 0o755); err != nil {
		cleanup()
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	if err := fill(tmp); err != nil {
		cleanup()
		return m, err
	}
	files, err := hashTree(tmp)
	if err != nil {
		cleanup()
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	m.Files = files
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	if err := writeJSON(filepath.Join(tmp, ManifestName), m); err != nil {
		cleanup()
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	syncDir(tmp)
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = dir + ".old-" + filepath.Base(tmp)
		if err := os.Rename(dir, old); err != nil {
			cleanup()
			return m, fmt.Errorf("publish %s: moving the previous artifact aside: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		cleanup()
		if old != "" {
			os.Rename(old, dir)
		}
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	syncDir(parent)
	if old != "" {
		os.RemoveAll(old)
	}
	return m, nil
}

func hashTree(root string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == ManifestName {
			return nil
		}
		sum, size, err := hashFile(path)
		if err != nil {
			return err
		}
		files = append(files, File{Path: filepath.ToSlash(rel), Size: size, SHA256: sum})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, err
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	f.Sync() // flush what fill wrote before the rename publishes it (best effort on read-only handles)
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Read loads the manifest of dir and checks its type against want (a prefix match
// on the kind, e.g. "checkpoint/" or an exact "checkpoint/v1"); want "" accepts any.
func Read(dir, want string) (Manifest, error) {
	var m Manifest
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrNotArtifact, dir, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("%w: %s/%s: %v", ErrNotArtifact, dir, ManifestName, err)
	}
	if want != "" && m.Type != want && !(strings.HasSuffix(want, "/") && strings.HasPrefix(m.Type, want)) {
		return m, fmt.Errorf("artifact %s: type %q, want %q", dir, m.Type, want)
	}
	return m, nil
}

// Verify re-hashes every file of the artifact against its manifest.
func Verify(dir string, m Manifest) error {
	for _, f := range m.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		sum, size, err := hashFile(path)
		if err != nil {
			return fmt.Errorf("artifact %s: %w", dir, err)
		}
		if size != f.Size || sum != f.SHA256 {
			return fmt.Errorf("artifact %s: %s: checksum mismatch (size %d, sha256 %s; manifest says %d, %s)",
				dir, f.Path, size, sum[:12], f.Size, f.SHA256[:min(12, len(f.SHA256))])
		}
	}
	return nil
}
