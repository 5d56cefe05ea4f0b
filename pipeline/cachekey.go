package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/internal/filehash"
	"github.com/mdlm-go/mdlm/stage"
)

// KeyFormat is the version of the cache key's form, hashed into every key and
// recorded in the lock file, so that keys of another form are never compared
// with these: an output cached under an older form misses and reruns, and
// the lock file's reasons say "cache key format changed" (why.go).
//
//	1  the `with:` values as written, each as its text (fmt.Sprint)
//	2  every keyed flag's resolved value: defaults filled in, scalars
//	   normalised to the flag's type, lists as lists (params.go; issue 21)
const KeyFormat = 2

// CacheKey is sha256 of the canonical form of (key format, kind, version,
// resolved params, input digests): map keys sorted by encoding/json, cosmetic
// and executor flags left out. Inputs include the content digest of every file
// a file-valued flag names. It returns the params the key covers. A value that
// does not parse as its flag's type enters as written; the engine refuses such
// a stage before keying it (decide.go).
func CacheKey(sp stage.Spec, with map[string]any, inputs map[string]string) (string, map[string]any) {
	params, _ := resolveParams(sp, with)
	return keyOf(sp, params, inputs), params
}

// keyOf is the key of resolved params and input digests.
func keyOf(sp stage.Spec, params map[string]any, inputs map[string]string) string {
	// Strings and lists of strings only (resolveParams): Marshal cannot fail.
	canon, _ := json.Marshal(map[string]any{"format": KeyFormat, "kind": sp.Kind, "version": sp.Version,
		"params": params, "inputs": inputs})
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// fileDigests adds to inputs the content digest of every file or directory
// that a file-valued flag (digest tag) names, under "<flag>:<path>", so an
// edited tokenizer, corpus or scorer invalidates the stages that read it
// although its path did not change. A digest:"file" flag must name existing
// files (globs allowed); a digest:"name-or-file" value that is no file is a
// built-in name and adds nothing. Only values written under `with:` are
// looked at: no file-valued flag has a default that names a file.
func fileDigests(sp stage.Spec, with map[string]any, inputs map[string]string) error {
	for _, fl := range sp.Flags {
		v, ok := with[fl.Name]
		if fl.Digest == "" || !ok {
			continue
		}
		for _, p := range values(v) {
			if err := fileDigest(fl, p, inputs); err != nil {
				return err
			}
		}
	}
	return nil
}

// fileDigest adds the digests of what one value of a file-valued flag names.
func fileDigest(fl stage.Flag, p string, inputs map[string]string) error {
	if stage.IsReference(p) { // hub:org/name@revision: keyed as written
		inputs[fl.Name+":"+p] = p
		return nil
	}
	matches := []string{p}
	if fl.Digest == stage.DigestFile {
		matches, _ = filepath.Glob(p)
		if len(matches) == 0 {
			return fmt.Errorf("with.%s: %q: no such file", fl.Name, p)
		}
	} else if _, err := os.Stat(p); err != nil {
		return nil
	}
	for _, m := range matches {
		d, err := contentDigest(m)
		if err != nil {
			return fmt.Errorf("with.%s: %w", fl.Name, err)
		}
		inputs[fl.Name+":"+m] = d
	}
	return nil
}

// contentDigest is a file's sha256; for a directory, the digest of its
// artifact manifest if it is an artifact (verified), else of its files'
// relative paths and sha256s.
func contentDigest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		sum, _, err := filehash.Sum(path)
		return "sha256:" + sum, err
	}
	if m, err := artifact.Read(path, ""); err == nil {
		if err := artifact.Verify(path, m); err != nil {
			return "", err
		}
		return m.Digest(), nil
	}
	files, err := artifact.ListFiles(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, rel := range files {
		sum, _, err := filehash.Sum(filepath.Join(path, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%s\n", rel, sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
