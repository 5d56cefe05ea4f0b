package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/objstore"
)

// Streamed inputs (issue 25): an s3:// value of an input field tagged
// stream:"" is not fetched into the cache. Execute writes its manifest (and
// its small non-Parquet files, fetched and verified) into a temporary stub
// directory that stands for the input, so the fingerprint and the output's
// run are those of a local copy; the stage opens the Parquet shards through
// OpenInputFile, which reads them from the bucket by ranged GETs
// (objstore.File), and must Verify each before publishing what it derived.

// InputFile is one file of an input artifact, local or streamed.
type InputFile interface {
	io.ReaderAt
	Size() int64
	// Name is the file's path or s3:// address, for errors.
	Name() string
	// Verify checks the streamed bytes against the manifest's sha256 (a
	// *objstore.DamagedError if they differ); a local file was verified when
	// its artifact was opened.
	Verify() error
	Close() error
}

// streamedInput is the bucket behind a stub directory.
type streamedInput struct {
	ctx   context.Context
	store *objstore.Store
	u     objstore.URL
	m     artifact.Manifest
}

var streams = struct {
	sync.Mutex
	by map[string]*streamedInput // stub directory -> its bucket input
}{by: map[string]*streamedInput{}}

func streamedAt(dir string) *streamedInput {
	streams.Lock()
	defer streams.Unlock()
	return streams.by[filepath.Clean(dir)]
}

// IsStreamed reports whether dir stands for an input read from a bucket.
func IsStreamed(dir string) bool { return streamedAt(dir) != nil }

// streamable is a file a stage reads through OpenInputFile.
func streamable(p string) bool { return !strings.Contains(p, "/") && strings.HasSuffix(p, ".parquet") }

// OpenArtifact is artifact.Open for a stage's input: a streamed input's
// files are not verified here but as OpenInputFile reads them.
func OpenArtifact[T artifact.Meta](dir string) (artifact.Manifest, T, error) {
	if !IsStreamed(dir) {
		return artifact.Open[T](dir)
	}
	var meta T
	m, err := artifact.Read(dir, meta.ArtifactType())
	if err != nil {
		return m, meta, err
	}
	meta, err = artifact.DecodeMeta[T](m)
	if err != nil {
		return m, meta, fmt.Errorf("artifact %s: %w", dir, err)
	}
	return m, meta, nil
}

// InputShards lists the "<prefix>-*.parquet" shards of an input directory
// in name order (datasets.Shards), from the manifest for a streamed input.
func InputShards(dir, prefix string) ([]string, error) {
	s := streamedAt(dir)
	if s == nil {
		return datasets.Shards(dir, prefix)
	}
	var out []string
	for _, f := range s.m.Files {
		if ok, _ := path.Match(prefix+"-*.parquet", f.Path); ok && streamable(f.Path) {
			out = append(out, filepath.Join(dir, f.Path))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no %s-*.parquet shards", s.u, prefix)
	}
	return out, nil
}

// OpenInputFile opens a file InputShards listed.
func OpenInputFile(p string) (InputFile, error) {
	s := streamedAt(filepath.Dir(p))
	if s == nil {
		return openLocal(p)
	}
	name := filepath.Base(p)
	for _, f := range s.m.Files {
		if f.Path == name {
			return s.store.OpenFile(s.ctx, s.u, f)
		}
	}
	return nil, fmt.Errorf("%s: no file %s in its manifest", s.u, name)
}

// localFile is an InputFile on this file system.
type localFile struct {
	*os.File
	size int64
}

func openLocal(p string) (InputFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return localFile{File: f, size: st.Size()}, nil
}

func (l localFile) Size() int64   { return l.size }
func (l localFile) Verify() error { return nil }

// stub writes the stand-in directory of the streamed input u: its manifest
// and its files a stage does not stream (a tokenizer.json, say), fetched and
// verified. It returns the directory and the undo that removes it.
func stub(ctx context.Context, s *objstore.Store, u objstore.URL) (string, func(), error) {
	m, raw, err := s.Manifest(ctx, u)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "mdlm-stream-")
	if err != nil {
		return "", nil, fmt.Errorf("streamed input %s: %w", u, err)
	}
	undo := func() {
		streams.Lock()
		delete(streams.by, dir)
		streams.Unlock()
		os.RemoveAll(dir)
	}
	if err := fillStub(ctx, s, u, dir, m, raw); err != nil {
		undo()
		return "", nil, err
	}
	streams.Lock()
	streams.by[dir] = &streamedInput{ctx: ctx, store: s, u: u, m: m}
	streams.Unlock()
	return dir, undo, nil
}

func fillStub(ctx context.Context, s *objstore.Store, u objstore.URL, dir string, m artifact.Manifest, raw []byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("streamed input %s: %w", u, err)
	}
	defer root.Close()
	if err := root.WriteFile(artifact.ManifestName, raw, 0o644); err != nil {
		return fmt.Errorf("streamed input %s: %w", u, err)
	}
	for _, f := range m.Files {
		if streamable(f.Path) {
			continue
		}
		if err := copyVerified(ctx, s, u, root, f); err != nil {
			return err
		}
	}
	return nil
}

// copyVerified downloads f into root (a path the manifest checked:
// artifact.ValidateFiles), verified (objstore.Store.CopyFile).
func copyVerified(ctx context.Context, s *objstore.Store, u objstore.URL, root *os.Root, f artifact.File) error {
	rel := filepath.FromSlash(f.Path)
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("streamed input %s: %s: %w", u, f.Path, err)
		}
	}
	out, err := root.Create(rel)
	if err != nil {
		return fmt.Errorf("streamed input %s: %s: %w", u, f.Path, err)
	}
	err = s.CopyFile(ctx, u, f, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("streamed input %s: %s: %w", u, f.Path, err)
	}
	return nil
}

// ScanInput opens the input file p (OpenInputFile), runs scan on it and
// verifies it. A file that fails to parse is verified too, and a damaged
// object is reported as such (the *objstore.DamagedError, which the
// pipeline treats as a miss), not as the parse error it caused.
func ScanInput(p string, scan func(in InputFile) error) error {
	in, err := OpenInputFile(p)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := scan(in); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if verr := in.Verify(); errors.As(verr, new(*objstore.DamagedError)) {
			return verr
		}
		return err
	}
	if err := in.Verify(); err != nil {
		return err
	}
	if f, ok := in.(interface{ Fetched() int64 }); ok {
		streamed.Add(f.Fetched())
	}
	return nil
}

// streamed counts the bytes streamed inputs downloaded, in this process.
var streamed atomic.Int64

// StreamedBytes is how many bytes streamed inputs downloaded so far in this
// process (verified files only).
func StreamedBytes() int64 { return streamed.Load() }
