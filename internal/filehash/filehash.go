// Package filehash computes the sha256 of files cheaply:
//
//   - Writer hashes a file while it is written: full buffers go to a background
//     goroutine that hashes them and issues the write syscalls, so both overlap
//     the producer (a table encoder, a tensor writer) on another core.
//   - Finished writers remember their digest by file identity (device, inode,
//     size, mtime), so publishing or verifying that file later in the same
//     process does not read it again, even after it was renamed.
//   - Sum hashes any other file once and SumAll hashes many in parallel.
//
// The in-process memory is trusted only for files this process wrote through a
// Writer; a file replaced or rewritten by another program gets a new inode, size
// or mtime and is read again. The one blind spot: a same-size rewrite within the
// same filesystem clock tick (a few ms) after the Writer closed. Persisted stat
// caches (artifact.Verify) build on Stat and add git's racy-entry check.
package filehash

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// Identity is what a file's digest is remembered by.
type Identity struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
}

// Stat returns a file's identity.
func Stat(path string) (Identity, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Identity{}, err
	}
	return identityOf(fi), nil
}

func identityOf(fi os.FileInfo) Identity {
	id := Identity{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), uint64(st.Ino)
		id.CtimeNs = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return id
}

type key struct{ dev, ino uint64 }

type remembered struct {
	size, mtime int64
	sum         string
}

var memory sync.Map // key -> remembered

func remember(id Identity, sum string) {
	if id.Ino != 0 {
		memory.Store(key{id.Dev, id.Ino}, remembered{id.Size, id.MtimeNs, sum})
	}
}

// Known returns the digest a Writer of this process recorded for the file at
// path, if the file is still the one it wrote (same inode, size and mtime; a
// rename keeps all three).
func Known(path string) (sum string, size int64, ok bool) {
	id, err := Stat(path)
	if err != nil || id.Ino == 0 {
		return "", 0, false
	}
	v, found := memory.Load(key{id.Dev, id.Ino})
	if !found {
		return "", 0, false
	}
	r := v.(remembered)
	if r.size != id.Size || r.mtime != id.MtimeNs {
		return "", 0, false
	}
	return r.sum, r.size, true
}

// Sum returns the hex sha256 and size of the file at path: remembered when this
// process wrote it through a Writer, else read and hashed. The file is fsynced
// either way, so a caller about to publish it by renaming can rely on its bytes.
func Sum(path string) (string, int64, error) {
	if sum, size, ok := Known(path); ok {
		return sum, size, nil
	}
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
	f.Sync() // best effort: some systems refuse fsync on read-only handles
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Result is one file's digest from SumAll.
type Result struct {
	SHA256 string
	Size   int64
	Err    error
}

// SumAll hashes paths on up to GOMAXPROCS goroutines; results follow paths' order.
func SumAll(paths []string) []Result {
	out := make([]Result, len(paths))
	workers := min(runtime.GOMAXPROCS(0), len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i].SHA256, out[i].Size, out[i].Err = Sum(paths[i])
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

const chunk = 1 << 20

// Writer is a buffered file writer that hashes what it writes on a background
// goroutine (which also performs the writes). Close flushes, fsyncs and closes
// the file and remembers its digest.
type Writer struct {
	f    *os.File
	buf  []byte
	free chan []byte
	full chan []byte
	done chan struct{}
	h    hash.Hash
	n    int64
	fail atomic.Pointer[error] // the background goroutine's first write error
	sum  string
	cerr error // Close's result, returned again by a second Close
	shut bool
	bufs int // buffers allocated so far (at most maxBufs)
}

// maxBufs buffers per writer: one being filled, up to two queued or in flight.
// The first is small, so that small files (manifests, lock files) cost little.
const (
	maxBufs    = 3
	firstChunk = 64 << 10
)

// Create creates (truncates) path and returns a hashing writer for it.
func Create(path string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return NewWriter(f), nil
}

// NewWriter takes ownership of f, positioned at its start and empty.
func NewWriter(f *os.File) *Writer {
	w := &Writer{f: f, free: make(chan []byte, maxBufs), full: make(chan []byte, maxBufs), done: make(chan struct{}),
		h: sha256.New(), buf: make([]byte, 0, firstChunk), bufs: 1}
	go w.drain()
	return w
}

func (w *Writer) drain() {
	defer close(w.done)
	var off int64
	for b := range w.full {
		if w.fail.Load() == nil {
			w.h.Write(b)
			if _, err := w.f.Write(b); err != nil {
				w.fail.Store(&err) // Write sees it and stops the producer early (a full disk)
			}
			startWriteback(w.f, off, int64(len(b)))
			off += int64(len(b))
		}
		w.free <- b[:0]
	}
}

// Write buffers p; full buffers are handed to the background goroutine.
func (w *Writer) Write(p []byte) (int, error) {
	if w.buf == nil {
		return 0, errors.New("filehash: write after Close")
	}
	if e := w.fail.Load(); e != nil {
		return 0, *e // an *os.PathError naming the file
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			w.full <- w.buf
			w.buf = w.nextBuf()
		}
	}
	w.n += int64(n)
	return n, nil
}

// nextBuf reuses a drained buffer, or allocates one while fewer than maxBufs exist.
func (w *Writer) nextBuf() []byte {
	select {
	case b := <-w.free:
		return b
	default:
	}
	if w.bufs < maxBufs {
		w.bufs++
		return make([]byte, 0, chunk)
	}
	return <-w.free
}

// Name is the file's name.
func (w *Writer) Name() string { return w.f.Name() }

// Close writes what is buffered, waits for the background goroutine, fsyncs and
// closes the file, and remembers its digest for Known and Sum. A second Close
// (say by a table writer that closes its sink) returns the first one's result.
func (w *Writer) Close() error {
	if w.shut {
		return w.cerr
	}
	w.shut = true
	w.cerr = w.close()
	return w.cerr
}

func (w *Writer) close() error {
	if len(w.buf) > 0 {
		w.full <- w.buf
	}
	w.buf = nil
	close(w.full)
	<-w.done
	var err error
	if e := w.fail.Load(); e != nil {
		err = *e
	} else {
		err = w.f.Sync()
	}
	var id Identity
	if err == nil {
		var fi os.FileInfo
		if fi, err = w.f.Stat(); err == nil {
			id = identityOf(fi)
		}
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err // *os.PathError values name the file
	}
	w.sum = hex.EncodeToString(w.h.Sum(nil))
	if id.Size == w.n {
		remember(id, w.sum)
	}
	return nil
}

// WriteFile creates path, lets write fill it through a hashing Writer, and
// closes (fsyncs) it; on failure the file is removed.
func WriteFile(path string, write func(io.Writer) error) error {
	w, err := Create(path)
	if err != nil {
		return err
	}
	if err := write(w); err != nil {
		w.Abort()
		os.Remove(path)
		return err
	}
	if err := w.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Abort stops the writer and closes the file without remembering anything (the
// caller removes it).
func (w *Writer) Abort() {
	if w.shut {
		return
	}
	w.shut = true
	if w.buf != nil {
		w.buf = nil
		close(w.full)
		<-w.done
	}
	w.f.Close()
}

// SHA256 is the hex digest of everything written; valid after Close.
func (w *Writer) SHA256() string { return w.sum }

// Size is the number of bytes written.
func (w *Writer) Size() int64 { return w.n }

// CopyFile copies src to dst through a hashing writer, streaming, so that
// publishing or verifying the copy in this process does not read it again.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return WriteFile(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
