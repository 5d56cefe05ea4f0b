package safetensors

import "io"

// byteReaderAt serves ReadAt from a byte slice (a memory map or an in-memory image).
type byteReaderAt []byte

func (b byteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FromBytes parses a safetensors image held in memory.
func FromBytes(data []byte, name string) (*File, error) {
	return NewReader(byteReaderAt(data), int64(len(data)), name)
}
