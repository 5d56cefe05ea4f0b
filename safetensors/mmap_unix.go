//go:build unix

package safetensors

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// OpenMmap opens a file through a read-only memory map: tensor reads copy straight
// from the page cache, and nothing is read until a tensor is asked for.
func OpenMmap(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return NewReader(emptyReader{}, 0, path)
	}
	data, err := syscall.Mmap(int(fh.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors: mmap %s: %w", path, err)
	}
	f, err := NewReader(byteReaderAt(data), size, path)
	if err != nil {
		syscall.Munmap(data)
		return nil, err
	}
	f.closer = func() error { return syscall.Munmap(data) }
	return f, nil
}

type emptyReader struct{}

func (emptyReader) ReadAt(p []byte, off int64) (int, error) { return 0, io.EOF }
