// Package tensors reads and writes safetensors files, the tensor container used by
// Hugging Face and by the MDLM reference checkpoints.
//
// File layout (https://github.com/huggingface/safetensors, format version 0):
//
//	+----------------+----------------------------+------------------------------+
//	| N (u64, LE)    | header: N bytes of JSON    | data: raw little-endian      |
//	|                | {"name": {"dtype": "F32",  | tensor bytes, addressed by   |
//	|                |   "shape": [..],           | data_offsets relative to the |
//	|                |   "data_offsets": [b, e]}, | start of this section        |
//	|                |  "__metadata__": {..}}     |                              |
//	+----------------+----------------------------+------------------------------+
//
// The reader works over any io.ReaderAt plus its size (a file, a memory map or a
// byte slice), and checks everything the header claims against that size before a
// byte of data is read: offsets inside the data section, sizes equal to the shape's
// element count times the dtype width, no overlaps or holes, no duplicate names, a
// known dtype, and a header as strict as the format's own reader (header.go).
// Supported dtypes: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.
//
// Writers publish atomically: the file is written under a temporary name in the
// destination directory, synced, renamed, and the directory synced.
package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
)

// Sentinel errors; every returned error wraps one of these and names the file and,
// where it applies, the tensor.
var (
	ErrFormat       = errors.New("safetensors: invalid file")
	ErrUnknownDType = errors.New("safetensors: unknown dtype")
	ErrNotFound     = errors.New("safetensors: no such tensor")
	ErrDType        = errors.New("safetensors: unsupported conversion")
)

// MaxHeaderSize bounds the JSON header: the format's own reader
// (safetensors/src/tensor.rs, MAX_HEADER_SIZE) refuses anything larger.
const MaxHeaderSize = 100_000_000

// DType is a safetensors dtype string.
type DType string

// The dtypes this package reads and writes.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size returns the width of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Info describes one tensor of a file.
type Info struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are byte offsets relative to the data section.
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (i Info) NumElements() int {
	n := 1
	for _, d := range i.Shape {
		n *= d
	}
	return n
}

// File is an opened safetensors file.
type File struct {
	name      string
	r         io.ReaderAt
	size      int64
	dataStart int64
	infos     []Info // in data-offset order
	byName    map[string]int
	// Metadata is the free-form string map under "__metadata__" (may be nil).
	Metadata map[string]string
	closer   func() error
}

// Name is the file name given when the file was opened (used in errors).
func (f *File) Name() string { return f.name }

// Tensors lists the tensors in data-offset order.
func (f *File) Tensors() []Info { return f.infos }

// Info returns the description of one tensor.
func (f *File) Info(name string) (Info, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Info{}, false
	}
	return f.infos[i], true
}

// Close releases the file (and its memory map, if any).
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c()
}

// NewReader parses the header of a safetensors image held in r (size bytes).
// name is used in error messages.
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	f := &File{name: name, r: r, size: size}
	if err := f.parseHeader(); err != nil {
		return nil, err
	}
	return f, nil
}

// Open opens a file with streamed reads (ReadAt on the file).
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := NewReader(fh, st.Size(), path)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh.Close
	return f, nil
}

func (f *File) errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", sentinel, f.name, fmt.Sprintf(format, args...))
}

func (f *File) parseHeader() error {
	if f.size < 8 {
		return f.errorf(ErrFormat, "file is %d bytes, shorter than the 8-byte header length", f.size)
	}
	var lenBuf [8]byte
	if _, err := f.r.ReadAt(lenBuf[:], 0); err != nil {
		return f.errorf(ErrFormat, "reading header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return f.errorf(ErrFormat, "header length %d exceeds the %d limit", n, MaxHeaderSize)
	}
	if int64(n) > f.size-8 {
		return f.errorf(ErrFormat, "header length %d runs past the end of the %d-byte file (truncated?)", n, f.size)
	}
	hdr := make([]byte, n)
	if _, err := f.r.ReadAt(hdr, 8); err != nil {
		return f.errorf(ErrFormat, "reading header: %v", err)
	}
	f.dataStart = 8 + int64(n)
	entries, meta, err := decodeHeader(hdr)
	if err != nil {
		return f.errorf(ErrFormat, "header: %v", err)
	}
	f.Metadata = meta
	f.byName = make(map[string]int, len(entries))
	for _, e := range entries {
		info, err := f.checkEntry(e.name, e.entry)
		if err != nil {
			return err
		}
		f.infos = append(f.infos, info)
	}
	return f.checkLayout()
}

func (f *File) checkEntry(name string, e headerEntry) (Info, error) {
	width := e.DType.Size()
	if width == 0 {
		return Info{}, f.errorf(ErrUnknownDType, "tensor %q: dtype %q", name, e.DType)
	}
	if len(e.DataOffsets) != 2 {
		return Info{}, f.errorf(ErrFormat, "tensor %q: data_offsets has %d entries, want 2", name, len(e.DataOffsets))
	}
	n := int64(1)
	for _, d := range e.Shape {
		if d < 0 {
			return Info{}, f.errorf(ErrFormat, "tensor %q: negative dimension in shape %v", name, e.Shape)
		}
		if d != 0 && n > math.MaxInt64/int64(d)/int64(width) {
			return Info{}, f.errorf(ErrFormat, "tensor %q: shape %v overflows", name, e.Shape)
		}
		n *= int64(d)
	}
	b, end := e.DataOffsets[0], e.DataOffsets[1]
	dataLen := f.size - f.dataStart
	if b < 0 || end < b || end > dataLen {
		return Info{}, f.errorf(ErrFormat, "tensor %q: data_offsets [%d, %d] outside the %d-byte data section (truncated file?)",
			name, b, end, dataLen)
	}
	if end-b != n*int64(width) {
		return Info{}, f.errorf(ErrFormat, "tensor %q: %d bytes at data_offsets [%d, %d], but shape %v of %s needs %d",
			name, end-b, b, end, e.Shape, e.DType, n*int64(width))
	}
	f.byName[name] = len(f.byName)
	return Info{Name: name, DType: e.DType, Shape: e.Shape, Begin: b, End: end}, nil
}

// checkLayout sorts tensors by offset and requires them to tile the data section.
func (f *File) checkLayout() error {
	// By (begin, end, name), like the format's reader (Metadata::deserialize sorts
	// by data_offsets): empty tensors may share an offset with the next one.
	sort.Slice(f.infos, func(i, j int) bool {
		a, b := f.infos[i], f.infos[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	var pos int64
	for i, info := range f.infos {
		if info.Begin != pos {
			if info.Begin < pos {
				return f.errorf(ErrFormat, "tensor %q at offset %d overlaps the previous tensor (ends at %d)", info.Name, info.Begin, pos)
			}
			return f.errorf(ErrFormat, "hole in the data section before tensor %q (offset %d, expected %d)", info.Name, info.Begin, pos)
		}
		pos = info.End
		f.byName[info.Name] = i
	}
	if dataLen := f.size - f.dataStart; pos != dataLen {
		return f.errorf(ErrFormat, "data section is %d bytes but tensors cover %d", dataLen, pos)
	}
	return nil
}

// Bytes returns the raw little-endian bytes of a tensor (a fresh copy).
func (f *File) Bytes(name string) ([]byte, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, f.errorf(ErrNotFound, "%q", name)
	}
	buf := make([]byte, info.End-info.Begin)
	if _, err := f.r.ReadAt(buf, f.dataStart+info.Begin); err != nil && !(err == io.EOF && len(buf) == 0) {
		return nil, f.errorf(ErrFormat, "tensor %q: reading data: %v", name, err)
	}
	return buf, nil
}

// Float32 reads a floating-point tensor (F32, F16, BF16 or F64) as float32.
func (f *File) Float32(name string) ([]float32, []int, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, nil, f.errorf(ErrNotFound, "%q", name)
	}
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]float32, info.NumElements())
	switch info.DType {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case F16:
		for i := range out {
			out[i] = float16.FromBits(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		}
	case BF16:
		for i := range out {
			out[i] = bfloat16.FromBits(binary.LittleEndian.Uint16(raw[2*i:])).Float32()
		}
	case F64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	default:
		return nil, nil, f.errorf(ErrDType, "tensor %q has dtype %s, want a float dtype", name, info.DType)
	}
	return out, info.Shape, nil
}

// Int64 reads an integer tensor (I64, I32, I16, I8 or U8) as int64.
func (f *File) Int64(name string) ([]int64, []int, error) {
	info, ok := f.Info(name)
	if !ok {
		return nil, nil, f.errorf(ErrNotFound, "%q", name)
	}
	raw, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	out := make([]int64, info.NumElements())
	switch info.DType {
	case I64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(raw[i]))
		}
	case U8:
		for i := range out {
			out[i] = int64(raw[i])
		}
	default:
		return nil, nil, f.errorf(ErrDType, "tensor %q has dtype %s, want an integer dtype", name, info.DType)
	}
	return out, info.Shape, nil
}
