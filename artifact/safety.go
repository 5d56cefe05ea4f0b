package artifact

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits on what a manifest may hold (issue 19: every byte from outside is
// hostile). A manifest larger than MaxManifestBytes is refused before it is read.
const (
	MaxManifestBytes = 64 << 20
)

// ErrNotReplaceable means an output path holds something publication must not
// replace: it is not an mdlm artifact, or it is a path always refused as an
// output.
var ErrNotReplaceable = errors.New("not an mdlm artifact; choose another -o or remove it yourself")

// ValidateFiles checks a manifest's file list before any file it names is
// opened: every path relative, slash-separated, clean and local (no "..", no
// absolute path, no backslash, not empty), not the manifest or the stat cache,
// listed once; sizes non-negative; sha256 64 lower-case hex digits.
func ValidateFiles(files []File) error {
	seen := make(map[string]bool, len(files))
	for i, f := range files {
		if err := validFilePath(f.Path); err != nil {
			return fmt.Errorf("files[%d].path %q: %w", i, f.Path, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("files[%d].path %q: listed twice", i, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 {
			return fmt.Errorf("files[%d].size %d: negative", i, f.Size)
		}
		if !validSHA256(f.SHA256) {
			return fmt.Errorf("files[%d].sha256 %q: want 64 lower-case hex digits", i, f.SHA256)
		}
	}
	return nil
}

func validFilePath(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case strings.ContainsAny(p, "\\\x00"):
		return errors.New("contains a backslash or NUL")
	case strings.HasPrefix(p, "/") || filepath.IsAbs(p):
		return errors.New("absolute")
	case path.Clean(p) != p || !filepath.IsLocal(filepath.FromSlash(p)):
		return errors.New("not a clean path inside the artifact")
	case p == ManifestName || p == StatCacheName:
		return errors.New("reserved name")
	}
	return nil
}

func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CheckOutputPath refuses output paths that must never be replaced: ".", "..",
// "/", the home directory, the current directory or any of its ancestors, and
// any path that is one of inputs, contains one, or lies inside one (defect 1 of
// issue 19). Paths are compared after resolving symbolic links.
func CheckOutputPath(dir string, inputs ...string) error {
	if dir == "" {
		return errors.New("output: empty path")
	}
	base := filepath.Base(filepath.Clean(dir))
	if base == "." || base == ".." || base == string(filepath.Separator) {
		return fmt.Errorf("output %s: refusing to publish over %q; name a new directory", dir, base)
	}
	out := resolve(dir)
	if out == string(filepath.Separator) {
		return fmt.Errorf("output %s: refusing to publish over the root directory", dir)
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && out == resolve(home) {
		return fmt.Errorf("output %s: refusing to publish over the home directory", dir)
	}
	if wd, err := os.Getwd(); err == nil && within(resolve(wd), out) {
		return fmt.Errorf("output %s: is the current directory or one of its parents; name a new directory", dir)
	}
	for _, in := range inputs {
		if in == "" {
			continue
		}
		r := resolve(in)
		if within(r, out) {
			return fmt.Errorf("output %s: would replace input %s", dir, in)
		}
		if within(out, r) {
			return fmt.Errorf("output %s: lies inside input %s", dir, in)
		}
	}
	return nil
}

// within reports whether p is dir or lies under it (both absolute and clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// resolve makes p absolute and resolves symbolic links in its longest existing
// prefix.
func resolve(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	for rest := ""; ; {
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return filepath.Join(abs, rest)
		}
		rest = filepath.Join(filepath.Base(abs), rest)
		abs = parent
	}
}

// CheckReplaceable reports whether publication may put an artifact at dir:
// nothing there, an empty directory, or an mdlm artifact (a directory whose
// manifest is valid and whose files are exactly those it lists, besides the
// stat cache). Anything else, a file, a symbolic link, a directory of other
// things or an artifact with unlisted files, is refused with an error naming
// it: nothing the user made is ever deleted (defect 1 of issue 19).
func CheckReplaceable(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("output %s: exists and is not a directory: %w", dir, ErrNotReplaceable)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("output %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dir, ManifestName)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("output %s: exists, is not empty and has no %s: %w", dir, ManifestName, ErrNotReplaceable)
	}
	m, err := Read(dir, "")
	if err != nil {
		return fmt.Errorf("output %s: exists and its manifest is not valid (%v): %w", dir, err, ErrNotReplaceable)
	}
	if extra := unlisted(dir, m); extra != "" {
		return fmt.Errorf("output %s: holds %s, which its %s does not list: %w", dir, extra, ManifestName, ErrNotReplaceable)
	}
	return nil
}

// unlisted returns the first thing in dir that is neither a file the manifest
// lists, a directory leading to one, the manifest, nor the stat cache (or its
// temporary file); "" if there is none.
func unlisted(dir string, m Manifest) string {
	listed := make(map[string]bool, len(m.Files))
	dirs := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	found := ""
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			found = p
			return filepath.SkipAll
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case d.IsDir() && dirs[rel]:
			return nil
		case d.Type().IsRegular() && (listed[rel] || rel == ManifestName || d.Name() == StatCacheName ||
			strings.HasPrefix(d.Name(), StatCacheName+".tmp-")):
			return nil
		}
		found = p
		return filepath.SkipAll
	})
	return found
}

// LockSuffix ends the name of the lock file kept beside an output while it is
// written: dir's lock is "." + base + LockSuffix in dir's parent (hidden, and
// with a suffix no stage gives an artifact). It is left in place (filelock).
const LockSuffix = ".mdlm-lock"

// LockPath is the lock file guarding the output dir (and its .work and
// .partial directories).
func LockPath(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+LockSuffix)
}
