package artifact

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TokenizerFile is the name under which an artifact (tokens/v1, packed/v1,
// checkpoint/v1) carries the tokenizer.json its metadata names: a tokenizer
// that is a file travels with the data and models made with it, never as a
// path to somewhere else (a moved cache, another machine, an export).
const TokenizerFile = "tokenizer.json"

// MaxTokenizerBytes bounds a tokenizer file copied into an artifact: what
// tokenizer.LoadFile reads (tokenizer.MaxFileBytes).
const MaxTokenizerBytes = 64 << 20

// IsTokenizerPath reports whether a tokenizer name names a file (a
// tokenizer.json) rather than a built-in tokenizer.
func IsTokenizerPath(name string) bool { return strings.HasSuffix(name, ".json") }

// ErrTokenizerGone marks an absolute tokenizer path, recorded by an artifact
// written before artifacts carried their tokenizer, that no longer exists.
var ErrTokenizerGone = errors.New("the tokenizer file it names no longer exists")

// ResolveTokenizer turns the tokenizer name an artifact in dir records into
// what tokenizer.Load takes: TokenizerFile is the artifact's own file (a
// regular file in dir); a built-in name stays a name; an absolute path to a
// .json file (artifacts written before tokenizers were embedded) is taken as
// written if it still exists (else an error wrapping ErrTokenizerGone). Any
// other path is refused: metadata must not point outside its artifact.
func ResolveTokenizer(dir, name string) (string, error) {
	switch {
	case name == TokenizerFile:
		return ownTokenizer(dir)
	case filepath.IsAbs(name) && IsTokenizerPath(name):
		return legacyTokenizer(dir, name)
	case IsTokenizerPath(name) || strings.ContainsAny(name, `/\`):
		return "", fmt.Errorf("artifact %s: tokenizer %q: neither a built-in name nor the artifact's own %s", dir, name, TokenizerFile)
	}
	return name, nil
}

// ownTokenizer is the path of dir's TokenizerFile, which must be a regular
// file (not a link that could lead out of the artifact).
func ownTokenizer(dir string) (string, error) {
	path := filepath.Join(dir, TokenizerFile)
	st, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("artifact %s: records tokenizer %q but holds no such file: %w", dir, TokenizerFile, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("artifact %s: %s is not a regular file (%s)", dir, TokenizerFile, st.Mode().Type())
	}
	return path, nil
}

// legacyTokenizer checks an absolute tokenizer path an older artifact records.
func legacyTokenizer(dir, name string) (string, error) {
	if st, err := os.Stat(name); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("artifact %s: tokenizer %s (a path recorded before artifacts carried their %s): %w; rebuild the artifact, or pass --tokenizer",
			dir, name, TokenizerFile, ErrTokenizerGone)
	}
	return name, nil
}

// EmbedTokenizer copies the tokenizer file name (a path; see ResolveTokenizer)
// into dir, an artifact being written, as TokenizerFile and returns the name
// to record. A built-in name is returned as it is and nothing is copied.
func EmbedTokenizer(dir, name string) (string, error) {
	if !IsTokenizerPath(name) {
		return name, nil
	}
	dst := filepath.Join(dir, TokenizerFile)
	if same, _ := sameFile(name, dst); same {
		return TokenizerFile, nil
	}
	src, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("tokenizer %s: %w", name, err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("tokenizer %s: %w", name, err)
	}
	n, err := io.Copy(out, io.LimitReader(src, MaxTokenizerBytes+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > MaxTokenizerBytes {
		err = fmt.Errorf("more than %d bytes", MaxTokenizerBytes)
	}
	if err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("tokenizer %s: copy into %s: %w", name, dir, err)
	}
	return TokenizerFile, nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// TokenizerLabel is how metadata of an artifact that does not carry the
// tokenizer itself (samples, metrics) names one: a file as TokenizerFile (the
// input checkpoint's, which the manifest's inputs identify), never by a path
// that would make the artifact depend on where the cache lives.
func TokenizerLabel(name string) string {
	if IsTokenizerPath(name) {
		return TokenizerFile
	}
	return name
}
