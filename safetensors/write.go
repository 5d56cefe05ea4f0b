package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// Tensor is one tensor to write: raw little-endian bytes plus dtype and shape.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// FromFloat32 packs float32 values as an F32 tensor.
func FromFloat32(name string, shape []int, values []float32) Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: shape, Data: data}
}

// FromInt64 packs int64 values as an I64 tensor.
func FromInt64(name string, shape []int, values []int64) Tensor {
	data := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(v))
	}
	return Tensor{Name: name, DType: I64, Shape: shape, Data: data}
}

// Encode writes a safetensors image of ts (in the given order) to w. The header
// is padded with spaces to a multiple of 8 bytes so every tensor stays aligned.
func Encode(w io.Writer, ts []Tensor, metadata map[string]string) error {
	hdr, err := encodeHeader(ts, metadata)
	if err != nil {
		return err
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, t := range ts {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

func encodeHeader(ts []Tensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	writeKey := func(k string) {
		if !first {
			buf.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("safetensors: metadata %q: not valid UTF-8", k)
		}
	}
	if len(metadata) > 0 {
		writeKey(metadataKey)
		mb, err := json.Marshal(metadata) // map keys sorted: deterministic
		if err != nil {
			return nil, err
		}
		buf.Write(mb)
	}
	seen := map[string]bool{}
	var off int64
	for _, t := range ts {
		if t.Name == "" || t.Name == metadataKey || !utf8.ValidString(t.Name) {
			return nil, fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if len(t.Shape) > MaxRank {
			return nil, fmt.Errorf("safetensors: tensor %q: %d dimensions, more than the %d the reader accepts", t.Name, len(t.Shape), MaxRank)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("safetensors: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		info := Info{DType: t.DType, Shape: t.Shape}
		if t.DType.Size() == 0 {
			return nil, fmt.Errorf("%w: tensor %q: dtype %q", ErrUnknownDType, t.Name, t.DType)
		}
		if want := int64(info.NumElements() * t.DType.Size()); want != int64(len(t.Data)) {
			return nil, fmt.Errorf("safetensors: tensor %q: %d bytes of data for shape %v of %s (want %d)",
				t.Name, len(t.Data), t.Shape, t.DType, want)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		eb, err := json.Marshal(headerEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{off, off + int64(len(t.Data))}})
		if err != nil {
			return nil, err
		}
		writeKey(t.Name)
		buf.Write(eb)
		off += int64(len(t.Data))
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	return buf.Bytes(), nil
}

// WriteFile writes ts to path atomically: a temporary file in the same directory
// is written, synced and renamed over path, then the directory is synced. A
// failure leaves any previous file at path untouched.
func WriteFile(path string, ts []Tensor, metadata map[string]string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, ts, metadata) })
}
