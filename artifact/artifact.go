// Package artifact reads, writes and verifies typed stage outputs: a directory of
// files plus an artifact.json manifest (see docs/architecture.md, Artifacts) naming the
// artifact type ("checkpoint/v1", ...), every file with its size and sha256, the
// producing stage and its parameters, and the tool version.
//
// Publishing is atomic: files are written into a temporary sibling directory, each
// file is hashed and synced, the manifest is written last, and the directory is
// renamed into place and its parent synced. A crash never leaves a directory that
// looks complete, and a directory without a valid manifest is not an artifact.
// Publication replaces only an artifact (or an empty directory), never anything
// else a user keeps at the path (CheckReplaceable, CheckOutputPath), and a
// manifest's file list is checked before any file it names is opened
// (ValidateFiles).
//
// Hashing is kept off the critical path: files written through
// internal/filehash were hashed while being written, the rest are hashed in
// parallel, and Verify consults a stat cache (StatCacheName) before reading a
// file again.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/internal/filehash"
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
	Version int               `json:"stage_version,omitempty"` // the stage kind's version (stage.Def.Version)
	Params  map[string]any    `json:"params,omitempty"`
	Inputs  map[string]string `json:"inputs,omitempty"` // input name -> artifact digest
	Tool    string            `json:"tool,omitempty"`
	Backend string            `json:"backend,omitempty"`
	// Run fingerprints the run that produced the artifact (stage kind and
	// version, options, input digests: stage.Fingerprint), so a process that
	// waited for another writer can tell the artifact is what it would build.
	Run     string    `json:"run,omitempty"`
	Created time.Time `json:"created"`
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
// the manifest is written, and the directory is renamed to dir.
//
// Only an mdlm artifact or an empty directory is ever replaced (CheckReplaceable,
// checked before fill and again just before the rename), and never a path
// CheckOutputPath refuses: anything else at dir is an error and stays as it
// was. An existing artifact is swapped for the new one atomically where the
// system can (Linux), so dir never lacks a complete copy.
// Optional edits run on the manifest after fill, before the files are listed.
// Callers that may race with another process on dir hold LockPath(dir).
func Publish(dir string, m Manifest, fill func(tmp string) error, edits ...func(*Manifest)) (Manifest, error) {
	if err := CheckOutputPath(dir); err != nil {
		return m, fmt.Errorf("publish: %w", err)
	}
	if err := CheckReplaceable(dir); err != nil {
		return m, fmt.Errorf("publish: %w", err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, atomicfile.TempPrefix(dir)+"*")
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
	for _, edit := range edits {
		edit(&m)
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
	atomicfile.SyncDir(tmp)
	if err := install(tmp, dir); err != nil {
		cleanup()
		return m, fmt.Errorf("publish %s: %w", dir, err)
	}
	atomicfile.SyncDir(parent)
	saveStatCache(dir, m.Files)
	return m, nil
}

// install renames the finished temporary directory tmp to dir. Nothing at
// dir, or an empty directory, is replaced by a plain rename (which fails if
// the directory filled meanwhile); an artifact is exchanged with tmp and then
// removed, unless it gained unlisted files meanwhile: then it is kept beside
// dir under a name said in a warning.
func install(tmp, dir string) error {
	if err := CheckReplaceable(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0 {
		// rename(2) itself, not os.Rename (which refuses any existing
		// directory): it replaces an empty directory and fails on one that
		// filled meanwhile.
		if err := syscall.Rename(tmp, dir); err != nil {
			return &os.LinkError{Op: "rename", Old: tmp, New: dir, Err: err}
		}
		return nil
	}
	if err != nil {
		return err
	}
	old := tmp
	if err := exchange(tmp, dir); err != nil {
		// No atomic exchange here: move the old artifact aside (to a name the
		// stale-temporary cleanup does not match) and put the new one in place.
		old = filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".old-"+filepath.Base(tmp))
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("moving the previous artifact aside: %w", err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.Rename(old, dir)
			return err
		}
	}
	if err := CheckReplaceable(old); err != nil {
		keep := dir + ".previous-" + time.Now().UTC().Format("20060102T150405.000000000")
		if rerr := os.Rename(old, keep); rerr != nil {
			keep = old
		}
		slog.Warn("the replaced output changed while this artifact was built; kept it", "kept", keep, "why", err)
		return nil
	}
	return os.RemoveAll(old)
}

// hashTree digests every regular file under root except the manifest, in
// parallel; files written through filehash are not read again.
func hashTree(root string) ([]File, error) {
	var files []File
	var paths []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == ManifestName || d.Name() == StatCacheName { // a nested artifact's stat cache changes as it is verified
			return nil
		}
		files = append(files, File{Path: filepath.ToSlash(rel)})
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, r := range filehash.SumAll(paths) {
		if r.Err != nil {
			return nil, r.Err
		}
		files[i].Size, files[i].SHA256 = r.Size, r.SHA256
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return filehash.WriteFile(path, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// Read loads the manifest of dir and checks its type against want (a prefix match
// on the kind, e.g. "checkpoint/" or an exact "checkpoint/v1"); want "" accepts any.
func Read(dir, want string) (Manifest, error) {
	var m Manifest
	path := filepath.Join(dir, ManifestName)
	if fi, err := os.Stat(path); err == nil && fi.Size() > MaxManifestBytes {
		return m, fmt.Errorf("%w: %s: %d bytes, more than the %d a manifest may have", ErrNotArtifact, path, fi.Size(), MaxManifestBytes)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrNotArtifact, dir, err)
	}
	m, err = ParseManifest(raw)
	if err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrNotArtifact, path, err)
	}
	if want != "" && m.Type != want && !(strings.HasSuffix(want, "/") && strings.HasPrefix(m.Type, want)) {
		return m, fmt.Errorf("artifact %s: type %q, want %q", dir, m.Type, want)
	}
	return m, nil
}

// ParseManifest decodes a manifest and checks its file list (ValidateFiles)
// and type, so that no path it names is opened unchecked.
func ParseManifest(raw []byte) (Manifest, error) {
	var m Manifest
	if len(raw) > MaxManifestBytes {
		return m, fmt.Errorf("%d bytes, more than the %d a manifest may have", len(raw), MaxManifestBytes)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, err
	}
	if m.Type == "" {
		return m, errors.New("type: missing")
	}
	if err := ValidateFiles(m.Files); err != nil {
		return m, err
	}
	return m, nil
}

// Verify checks every file of the artifact against its manifest: sizes always;
// contents through the artifact's stat cache (a file whose device, inode, size,
// mtime and ctime are those recorded when it was last hashed is not read again),
// else by hashing, in parallel. MDLM_VERIFY=full hashes every file regardless.
func Verify(dir string, m Manifest) error {
	if err := ValidateFiles(m.Files); err != nil {
		return fmt.Errorf("artifact %s: %s: %w", dir, ManifestName, err)
	}
	full := os.Getenv("MDLM_VERIFY") == "full"
	cache := loadStatCache(dir)
	var todo []File
	var paths []string
	var bytes int64
	for _, f := range m.Files {
		path := filepath.Join(dir, filepath.FromSlash(f.Path))
		id, err := filehash.Stat(path)
		if err != nil {
			return fmt.Errorf("artifact %s: %w", dir, err)
		}
		if id.Size != f.Size {
			return fmt.Errorf("artifact %s: %s: size %d, manifest says %d (truncated or replaced?)", dir, f.Path, id.Size, f.Size)
		}
		if !full && cache.trusts(f, id) {
			continue
		}
		if sum, _, ok := filehash.Known(path); ok && !full && sum == f.SHA256 {
			continue
		}
		todo = append(todo, f)
		paths = append(paths, path)
		bytes += f.Size
	}
	if bytes >= 1<<30 { // say why a stage is slow to start
		slog.Info("verifying artifact: hashing files whose stat data changed", "dir", dir, "files", len(todo),
			"GB", fmt.Sprintf("%.1f", float64(bytes)/1e9))
	}
	for i, r := range filehash.SumAll(paths) {
		f := todo[i]
		if r.Err != nil {
			return fmt.Errorf("artifact %s: %w", dir, r.Err)
		}
		if r.Size != f.Size || r.SHA256 != f.SHA256 {
			return fmt.Errorf("artifact %s: %s: checksum mismatch (size %d, sha256 %s; manifest says %d, %s)",
				dir, f.Path, r.Size, r.SHA256[:12], f.Size, f.SHA256[:min(12, len(f.SHA256))])
		}
	}
	if len(todo) > 0 {
		saveStatCache(dir, m.Files)
	}
	return nil
}
