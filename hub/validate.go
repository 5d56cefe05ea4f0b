package hub

// Validation of everything the hub (or a user naming something on the hub)
// hands us before it becomes a URL or a path under the cache (issue 19,
// defect 2): repository ids, revisions and the paths of a repository listing.
// The repository-id rules are the Hugging Face hub's own (huggingface_hub
// utils/_validators.py, validate_repo_id); revisions follow git's ref-name
// rules (git check-ref-format), which the hub enforces for branches and tags.

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Limits on names from outside; README's limits table lists them.
const (
	MaxRepoPart    = 96   // characters in a namespace or a repository name
	MaxRevision    = 256  // bytes in a revision
	MaxPath        = 4096 // bytes in a listed file path
	MaxPathDepth   = 64   // components in a listed file path
	maxPartNameLen = 255  // bytes in one component of a listed path
)

// ValidateRepoID checks a repository id: "name" or "namespace/name", each part
// of ASCII letters, digits, '_', '-' and '.', starting and ending with a letter,
// digit or '_', at most 96 characters, without "--" or "..", and not ending in
// ".git".
func ValidateRepoID(repo string) error {
	bad := func(why string) error { return fmt.Errorf("hub: invalid repository id %q: %s", repo, why) }
	if repo == "" {
		return bad("empty")
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return bad("use 'name' or 'namespace/name'")
	}
	if strings.Contains(repo, "--") || strings.Contains(repo, "..") {
		return bad("'--' and '..' are forbidden")
	}
	if strings.HasSuffix(repo, ".git") {
		return bad("must not end in '.git'")
	}
	for _, p := range parts {
		if err := repoPart(p); err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

func repoPart(p string) error {
	if p == "" || len(p) > MaxRepoPart {
		return fmt.Errorf("each part must have 1 to %d characters", MaxRepoPart)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !isWordByte(c) && c != '-' && c != '.' {
			return fmt.Errorf("character %q not allowed (letters, digits, '_', '-', '.')", c)
		}
	}
	if !isWordByte(p[0]) || !isWordByte(p[len(p)-1]) {
		return fmt.Errorf("'-' and '.' cannot start or end %q", p)
	}
	return nil
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ValidateRevision checks a revision: a branch or tag name, a commit, or a
// ref such as refs/pr/1 or refs/convert/parquet. It follows git's ref-name
// rules: printable ASCII without space, '\\', '~', '^', ':', '?', '*', '[',
// no "..", "//" or "@{", no component starting with '.' or ending in ".lock",
// not starting with '/' or '-', not ending in '/' or '.', at most 256 bytes.
func ValidateRevision(rev string) error {
	bad := func(why string) error { return fmt.Errorf("hub: invalid revision %q: %s", rev, why) }
	switch {
	case rev == "":
		return bad("empty")
	case len(rev) > MaxRevision:
		return bad(fmt.Sprintf("longer than %d bytes", MaxRevision))
	case rev == "@":
		return bad("'@' alone is not a revision")
	case strings.HasPrefix(rev, "/") || strings.HasPrefix(rev, "-"):
		return bad("must not start with '/' or '-'")
	case strings.HasSuffix(rev, "/") || strings.HasSuffix(rev, "."):
		return bad("must not end with '/' or '.'")
	}
	for _, seq := range []string{"..", "//", "@{"} {
		if strings.Contains(rev, seq) {
			return bad(fmt.Sprintf("must not contain %q", seq))
		}
	}
	for i := 0; i < len(rev); i++ {
		c := rev[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`\~^:?*[`, c) >= 0 {
			return bad(fmt.Sprintf("character %q not allowed", c))
		}
	}
	for _, comp := range strings.Split(rev, "/") {
		if strings.HasPrefix(comp, ".") || strings.HasSuffix(comp, ".lock") {
			return bad(fmt.Sprintf("component %q must not start with '.' or end in '.lock'", comp))
		}
	}
	return nil
}

// ValidatePath checks a file path from a repository listing: relative,
// slash-separated, with no empty, "." or ".." component, no backslash, NUL or
// other control character, at most 4096 bytes and 64 components, each at most
// 255 bytes, and local (filepath.IsLocal) once converted to this system's form.
func ValidatePath(p string) error {
	bad := func(why string) error { return fmt.Errorf("invalid file path %q: %s", p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPath:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPath))
	case strings.ContainsRune(p, '\\'):
		return bad("backslash")
	}
	for i := 0; i < len(p); i++ {
		if p[i] < ' ' || p[i] == 0x7f {
			return bad(fmt.Sprintf("control character %q", p[i]))
		}
	}
	comps := strings.Split(p, "/")
	if len(comps) > MaxPathDepth {
		return bad(fmt.Sprintf("more than %d components", MaxPathDepth))
	}
	for _, c := range comps {
		switch {
		case c == "" || c == "." || c == "..":
			return bad(fmt.Sprintf("component %q", c))
		case len(c) > maxPartNameLen:
			return bad(fmt.Sprintf("a component longer than %d bytes", maxPartNameLen))
		}
	}
	if path.Clean(p) != p || !filepath.IsLocal(filepath.FromSlash(p)) {
		return bad("not a local path")
	}
	return nil
}

// LocalPath joins a validated repository path under dir, refusing anything
// that would land outside it.
func LocalPath(dir, p string) (string, error) {
	if err := ValidatePath(p); err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.FromSlash(p)), nil
}

// RevisionDir is a revision as one directory name: url.PathEscape, which is
// reversible, so "refs/pr/1" and "refs" never nest and two revisions never
// share a directory; plain branch names, tags and commits are unchanged.
func RevisionDir(revision string) string { return urlPathEscape(revision) }

// CachePath is <root>/<kind>/<repo>/<revision> after validating the repository
// id and the revision (RevisionDir): the one place hub names become cache
// directories.
func CachePath(root, kind, repo, revision string) (string, error) {
	if err := ValidateRepoID(repo); err != nil {
		return "", err
	}
	if err := ValidateRevision(revision); err != nil {
		return "", err
	}
	rel := filepath.Join(kind, filepath.FromSlash(repo), RevisionDir(revision))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("hub: cache path %q for %s@%s is not local", rel, repo, revision)
	}
	return filepath.Join(root, rel), nil
}

// escapePath escapes each component of a slash-separated path for a URL.
func escapePath(p string) string {
	comps := strings.Split(p, "/")
	for i, c := range comps {
		comps[i] = urlPathEscape(c)
	}
	return strings.Join(comps, "/")
}
