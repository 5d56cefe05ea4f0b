package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix is how every temporary name made for path begins: Write's
// temporary files and artifact.Publish's temporary directories are
// "." + base + ".tmp-" followed by the decimal digits os.CreateTemp and
// os.MkdirTemp append.
func TempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// IsTempOf reports whether name (a base name in path's directory) is exactly
// a temporary name made for path.
func IsTempOf(name, path string) bool {
	rest, ok := strings.CutPrefix(name, TempPrefix(path))
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RemoveStale removes the temporary files and directories a killed process
// left for path (issue 19, defect 16a): only names IsTempOf matches, in path's
// own directory. The caller must hold path's lock, so that no live writer
// owns them. It returns the names removed.
func RemoveStale(path string) ([]string, error) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if !IsTempOf(e.Name(), path) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, err
		}
		removed = append(removed, p)
	}
	return removed, nil
}
