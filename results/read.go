package results

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/pipeline"
)

// Limits on what is read from a cache directory or a lock file (every byte
// there is untrusted: a cache may be shared, a lock file comes from git).
const (
	MaxMetricsBytes   = 1 << 20               // a metrics.json
	MaxLockBytes      = pipeline.MaxLockBytes // a <pipeline>.lock.json, as the engine reads it
	MaxCurveBytes     = 64 << 20              // a metrics.jsonl
	MaxCurveLine      = 64 << 10              // one metrics.jsonl line
	MaxCurvePoints    = 200_000               // records kept from one metrics.jsonl
	MaxSamplesBytes   = 64 << 20              // a samples.jsonl
	MaxSamples        = 1000                  // samples kept from one samples/v1
	MaxCacheEntries   = 100_000               // directory entries listed in a cache
	MaxMetricDepth    = 4                     // nesting of objects flattened in metrics.json
	MaxAncestry       = 32                    // input hops followed for inherited params
	MaxAncestorVisits = 1024                  // stages visited collecting one stage's inherited params
	maxMetricsEntries = 10_000                // fields of one metrics.json
)

// Root is a directory every read is confined to (the cache): paths are
// resolved through os.Root, so neither ".." nor a symbolic link leads out.
type Root struct {
	Dir  string // absolute
	root *os.Root
}

// OpenRoot opens dir as a read root.
func OpenRoot(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	return &Root{Dir: abs, root: r}, nil
}

// Close releases the root.
func (r *Root) Close() error { return r.root.Close() }

// Rel returns dir relative to the root, slash-separated, or an error when dir
// is not inside it.
func (r *Root) Rel(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(r.Dir, dir)
	}
	rel, err := filepath.Rel(r.Dir, filepath.Clean(dir))
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s is outside the cache directory %s (pass --cache-dir)", dir, r.Dir)
	}
	return filepath.ToSlash(rel), nil
}

// ReadFile reads rel (slash-separated, inside the root) up to limit bytes.
func (r *Root) ReadFile(rel string, limit int64) ([]byte, error) {
	if !fs.ValidPath(rel) {
		return nil, fmt.Errorf("%s: not a path inside the cache", rel)
	}
	f, err := r.root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", r.abs(rel))
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d allowed", r.abs(rel), fi.Size(), limit)
	}
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(raw)) > limit {
		err = fmt.Errorf("%s: more than the %d bytes allowed", r.abs(rel), limit)
	}
	return raw, err
}

// Stat stats rel inside the root (following links that stay inside).
func (r *Root) Stat(rel string) (fs.FileInfo, error) {
	if !fs.ValidPath(rel) {
		return nil, fmt.Errorf("%s: not a path inside the cache", rel)
	}
	return r.root.Stat(filepath.FromSlash(rel))
}

// Entries lists the root's top-level directories (at most MaxCacheEntries).
func (r *Root) Entries() ([]string, error) {
	f, err := r.root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", r.Dir, err)
	}
	defer f.Close()
	ents, err := f.ReadDir(MaxCacheEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("cache directory %s: %w", r.Dir, err)
	}
	if len(ents) > MaxCacheEntries {
		return nil, fmt.Errorf("cache directory %s: more than %d entries", r.Dir, MaxCacheEntries)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

func (r *Root) abs(rel string) string { return filepath.Join(r.Dir, filepath.FromSlash(rel)) }

// Manifest reads and checks the manifest of the artifact at rel.
func (r *Root) Manifest(rel string) (artifact.Manifest, error) {
	raw, err := r.ReadFile(path.Join(rel, artifact.ManifestName), artifact.MaxManifestBytes)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("%w: %v", artifact.ErrNotArtifact, err)
	}
	m, err := artifact.ParseManifest(raw)
	if err != nil {
		return m, fmt.Errorf("%w: %s: %v", artifact.ErrNotArtifact, r.abs(path.Join(rel, artifact.ManifestName)), err)
	}
	return m, nil
}

// ArtifactFile reads one file of the artifact at rel and checks it against
// the manifest's size and sha256, so a number shown is the published one.
func (r *Root) ArtifactFile(rel string, m artifact.Manifest, name string, limit int64) ([]byte, error) {
	var want *artifact.File
	for i := range m.Files {
		if m.Files[i].Path == name {
			want = &m.Files[i]
		}
	}
	if want == nil {
		return nil, fmt.Errorf("%s: the manifest lists no %s", r.abs(rel), name)
	}
	raw, err := r.ReadFile(path.Join(rel, name), limit)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	if int64(len(raw)) != want.Size || !strings.EqualFold(hex.EncodeToString(sum[:]), strings.TrimPrefix(want.SHA256, "sha256:")) {
		return nil, fmt.Errorf("%s: does not match its manifest (changed after publication)", r.abs(path.Join(rel, name)))
	}
	return raw, nil
}

// ParseMetrics decodes a metrics.json object: numbers keep their exact text
// (json.Number), nested objects are flattened to dotted names, strings and
// booleans go to info.
func ParseMetrics(raw []byte) (metrics map[string]json.Number, info map[string]string, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, nil, fmt.Errorf("metrics.json: %w", err)
	}
	metrics, info = map[string]json.Number{}, map[string]string{}
	if err := flatten("", obj, 0, metrics, info); err != nil {
		return nil, nil, err
	}
	return metrics, info, nil
}

func flatten(prefix string, obj map[string]any, depth int, metrics map[string]json.Number, info map[string]string) error {
	if depth > MaxMetricDepth {
		return fmt.Errorf("metrics.json: %q nests deeper than %d", prefix, MaxMetricDepth)
	}
	for k, v := range obj {
		if len(metrics)+len(info) > maxMetricsEntries {
			return fmt.Errorf("metrics.json: more than %d fields", maxMetricsEntries)
		}
		name := prefix + k
		switch v := v.(type) {
		case json.Number:
			metrics[name] = v
		case string:
			info[name] = v
		case bool:
			info[name] = fmt.Sprint(v)
		case map[string]any:
			if err := flatten(name+".", v, depth+1, metrics, info); err != nil {
				return err
			}
		}
	}
	return nil
}

// lines calls fn for each non-empty line of raw (each at most max bytes).
func lines(raw []byte, max int, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 4096), max)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line longer than %d bytes: %w", max, err)
	}
	return nil
}
