package torchckpt

// Reading torch.save zip archives as hostile input (issue 19, defect 3). The
// layout is torch/serialization.py's _save: one top folder holding data.pkl,
// data/<key> (one raw little-endian record per storage), version, and in
// newer PyTorch byteorder and .data/serialization_id. The pickle's persistent
// ids are ('storage', <class>, key, location, numel) (_save's persistent_id)
// and tensors are rebuilt by torch._utils._rebuild_tensor_v2(storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).
//
// Nothing read from the archive sizes an allocation before it is checked
// against what the archive can hold: each entry's claimed size against the
// bytes the file has for it, each storage's element count against its
// record's real size, each view's shape, strides and offset against its
// storage (with overflow checks).

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"

	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

const (
	// maxDeflateRatio is the most DEFLATE can expand its input (about 1032
	// to 1): a deflated entry claiming more is refused before it is read.
	maxDeflateRatio = 1032
	// maxDims bounds a tensor's rank.
	maxDims = 64
	// maxTensors bounds the tensors one checkpoint may rebuild.
	maxTensors = 1 << 20
)

// torchArchive is an open torch.save archive whose layout has been checked.
type torchArchive struct {
	zr       *zip.ReadCloser
	size     int64                // bytes in the file
	top      string               // the single top folder
	entries  map[string]*zip.File // by full name
	pkl      []byte               // data.pkl, scanned
	storages map[string]*torchStorage
	raw      map[string][]byte // storage records read so far, by key
	tensors  int
	stored   int64 // elements in the storages the pickle refers to
	budget   int64 // elements the reader may still materialise: 2*stored
}

// storageClass is a torch.<Name>Storage class named in the pickle.
type storageClass struct {
	name     string
	itemSize int
}

// storageClasses are torch's typed storages by name, with their element
// sizes (torch/storage.py). Any may be loaded (optimizer states, RNG states);
// materialisedClasses are those a tensor can be read from as float32.
var storageClasses = map[string]int{"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8,
	"IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16}

var materialisedClasses = map[string]bool{"FloatStorage": true, "HalfStorage": true, "BFloat16Storage": true, "DoubleStorage": true, "LongStorage": true}

// torchStorage is a storage record: numel elements of class, in entry.
type torchStorage struct {
	class *storageClass
	key   string
	numel int64
	entry *zip.File
}

// torchTensor is a view into a storage, checked to lie inside it.
type torchTensor struct {
	storage *torchStorage
	offset  int64
	size    []int
	stride  []int64
	numel   int64
}

// openTorchArchive opens path and checks its layout, then reads and scans
// data.pkl. Errors name the entry and what is wrong.
func openTorchArchive(path string) (*torchArchive, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("not a torch.save zip archive (truncated, or saved by torch < 1.6?): %w", err)
	}
	a := &torchArchive{zr: zr, size: st.Size(), entries: map[string]*zip.File{}, storages: map[string]*torchStorage{}, raw: map[string][]byte{}}
	if err := a.checkLayout(); err != nil {
		zr.Close()
		return nil, err
	}
	if err := a.checkByteOrder(); err != nil {
		zr.Close()
		return nil, err
	}
	name := a.top + "/data.pkl"
	if a.pkl, err = a.read(a.entries[name], maxPickle); err != nil {
		zr.Close()
		return nil, err
	}
	if err := scanPickle(a.pkl); err != nil {
		zr.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return a, nil
}

func (a *torchArchive) Close() error { return a.zr.Close() }

// checkLayout requires clean, unique entry names under one top folder, one
// data.pkl (the one decoded) and no TorchScript.
func (a *torchArchive) checkLayout() error {
	pkls := 0
	for _, f := range a.zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		if name == "" || strings.Contains(name, "\\") || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("zip entry %q: not a clean relative path", f.Name)
		}
		top, rest, _ := strings.Cut(name, "/")
		if rest == "" && !strings.HasSuffix(f.Name, "/") {
			return fmt.Errorf("zip entry %q: not inside a top folder", f.Name)
		}
		if a.top == "" {
			a.top = top
		}
		if top != a.top {
			return fmt.Errorf("zip entry %q: outside the archive's single top folder %q", f.Name, a.top)
		}
		if _, dup := a.entries[name]; dup {
			return fmt.Errorf("zip entry %q appears twice", f.Name)
		}
		a.entries[name] = f
		switch path.Base(name) {
		case "data.pkl":
			pkls++
		case "constants.pkl":
			return fmt.Errorf("zip entry %q: a TorchScript archive, not a torch.save checkpoint", f.Name)
		}
	}
	if _, ok := a.entries[a.top+"/data.pkl"]; !ok || pkls != 1 {
		return fmt.Errorf("want exactly one data.pkl, in the top folder (%d data.pkl entries found): not a torch.save checkpoint", pkls)
	}
	return nil
}

// checkByteOrder refuses a big-endian archive (newer torch writes byteorder).
func (a *torchArchive) checkByteOrder() error {
	f, ok := a.entries[a.top+"/byteorder"]
	if !ok {
		return nil
	}
	b, err := a.read(f, 16)
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(string(b)); s != "little" {
		return fmt.Errorf("%s: byte order %q is not supported (little)", f.Name, s)
	}
	return nil
}

// checkEntry compares an entry's claimed size with the bytes the file holds
// for it and with limit, and refuses compression methods other than Store and
// Deflate.
func (a *torchArchive) checkEntry(f *zip.File, limit uint64) error {
	if f.UncompressedSize64 > limit {
		return fmt.Errorf("%s: %d bytes, more than the %d allowed", f.Name, f.UncompressedSize64, limit)
	}
	off, err := f.DataOffset()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	if off < 0 || f.CompressedSize64 > uint64(a.size) || uint64(off) > uint64(a.size)-f.CompressedSize64 {
		return fmt.Errorf("%s: %d stored bytes at offset %d run past the file's %d bytes", f.Name, f.CompressedSize64, off, a.size)
	}
	switch f.Method {
	case zip.Store:
		if f.CompressedSize64 != f.UncompressedSize64 {
			return fmt.Errorf("%s: stored entry of %d bytes claims %d uncompressed", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	case zip.Deflate:
		if f.UncompressedSize64/maxDeflateRatio > f.CompressedSize64 {
			return fmt.Errorf("%s: %d deflated bytes cannot hold the %d claimed", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	default:
		return fmt.Errorf("%s: compression method %d is not supported (store or deflate)", f.Name, f.Method)
	}
	return nil
}

// read returns a checked entry's bytes, verifying its length and checksum.
func (a *torchArchive) read(f *zip.File, limit uint64) ([]byte, error) {
	if err := a.checkEntry(f, limit); err != nil {
		return nil, err
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	var one [1]byte // reach EOF, where archive/zip checks the size and CRC-32
	if n, err := rc.Read(one[:]); n != 0 || !errors.Is(err, io.EOF) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("longer than the %d bytes it claims", len(buf))
		}
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return buf, nil
}

// load decodes data.pkl: torch's storages and tensors become torchStorage
// and torchTensor, other classes pyClass objects. A decoder panic on a
// malformed pickle the scan let through is an error.
func (a *torchArchive) load() (obj any, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("%s/data.pkl: malformed pickle: %v", a.top, r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(a.pkl))
	u.FindClass = a.findClass
	u.PersistentLoad = a.persistentLoad
	obj, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("%s/data.pkl: %w", a.top, err)
	}
	return obj, nil
}

func (a *torchArchive) findClass(module, name string) (any, error) {
	if module == "torch" {
		if size, ok := storageClasses[name]; ok {
			return &storageClass{name: name, itemSize: size}, nil
		}
	}
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{a}, nil
	case "torch._utils._rebuild_parameter":
		return rebuildParameter{}, nil
	}
	return &pyClass{Module: module, Name: name}, nil
}

// persistentLoad resolves ('storage', class, key, location, numel), checking
// numel against the record's size; nothing is read yet.
func (a *torchArchive) persistentLoad(id any) (any, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() != 5 {
		return nil, fmt.Errorf("persistent id %T: want ('storage', class, key, location, numel)", id)
	}
	kind, _ := t.Get(0).(string)
	class, okClass := t.Get(1).(*storageClass)
	key, okKey := t.Get(2).(string)
	numel, okNumel := t.Get(4).(int)
	if kind != "storage" || !okKey || !okNumel {
		return nil, fmt.Errorf("persistent id: want ('storage', class, key, location, numel)")
	}
	if !okClass {
		return nil, fmt.Errorf("storage %q: class %v is not a torch storage class", key, t.Get(1))
	}
	if s, ok := a.storages[key]; ok {
		if s.class.name != class.name || s.numel != int64(numel) {
			return nil, fmt.Errorf("storage %q: loaded as %s of %d and as %s of %d", key, s.class.name, s.numel, class.name, numel)
		}
		return s, nil
	}
	return a.newStorage(class, key, numel)
}

// newStorage checks a storage record: a plain key naming an entry under
// data/ whose size is exactly numel elements.
func (a *torchArchive) newStorage(class *storageClass, key string, numel int) (*torchStorage, error) {
	if key == "" || key == "." || key == ".." || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("storage key %q is not a record name", key)
	}
	name := a.top + "/data/" + key
	f, ok := a.entries[name]
	if !ok {
		return nil, fmt.Errorf("storage %q: no record %s", key, name)
	}
	if numel < 0 || numel > math.MaxInt64/16 {
		return nil, fmt.Errorf("storage %q: %d elements is not a storage size", key, numel)
	}
	want := uint64(numel) * uint64(class.itemSize)
	if f.UncompressedSize64 != want {
		return nil, fmt.Errorf("storage %q: %d elements of %s (%d bytes) but record %s holds %d bytes", key, numel, class.name, want, name, f.UncompressedSize64)
	}
	if err := a.checkEntry(f, want); err != nil {
		return nil, err
	}
	s := &torchStorage{class: class, key: key, numel: int64(numel), entry: f}
	a.storages[key] = s
	a.stored += s.numel
	a.budget += 2 * s.numel // a storage may back two names (tied weights)
	return s, nil
}

// rebuildTensor is torch._utils._rebuild_tensor_v2.
type rebuildTensor struct{ a *torchArchive }

func (r rebuildTensor) Call(args ...any) (any, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %d arguments, want 6 or 7", len(args))
	}
	s, okS := args[0].(*torchStorage)
	off, okOff := args[1].(int)
	size, okSize := args[2].(*types.Tuple)
	stride, okStride := args[3].(*types.Tuple)
	if !okS || !okOff || !okSize || !okStride {
		return nil, fmt.Errorf("_rebuild_tensor_v2: want (storage, offset, size, stride, ...), got (%T, %T, %T, %T, ...)", args[0], args[1], args[2], args[3])
	}
	if r.a.tensors++; r.a.tensors > maxTensors {
		return nil, fmt.Errorf("more than %d tensors", maxTensors)
	}
	t, err := newTensorView(s, off, size, stride)
	if err != nil {
		return nil, fmt.Errorf("tensor on storage %q: %w", s.key, err)
	}
	return t, nil
}

// rebuildParameter is torch._utils._rebuild_parameter: the tensor itself.
type rebuildParameter struct{}

func (rebuildParameter) Call(args ...any) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("_rebuild_parameter: no arguments")
	}
	if _, ok := args[0].(*torchTensor); !ok {
		return nil, fmt.Errorf("_rebuild_parameter: %T is not a tensor", args[0])
	}
	return args[0], nil
}

// newTensorView checks a view: rank, non-negative sizes and strides, and
// every element inside the storage, with no arithmetic overflow. A view with
// more elements than its storage (overlapping, stride 0) is refused: it would
// let a few bytes ask for gigabytes.
func newTensorView(s *torchStorage, off int, size, stride *types.Tuple) (*torchTensor, error) {
	if size.Len() != stride.Len() || size.Len() > maxDims {
		return nil, fmt.Errorf("%d sizes and %d strides, want equal and at most %d", size.Len(), stride.Len(), maxDims)
	}
	if off < 0 {
		return nil, fmt.Errorf("storage offset %d is negative", off)
	}
	t := &torchTensor{storage: s, offset: int64(off), numel: 1}
	last := int64(off) // offset of the last element
	for d := 0; d < size.Len(); d++ {
		n, okN := size.Get(d).(int)
		st, okSt := stride.Get(d).(int)
		if !okN || !okSt || n < 0 || st < 0 {
			return nil, fmt.Errorf("dimension %d: size %v and stride %v, want non-negative integers", d, size.Get(d), stride.Get(d))
		}
		t.size, t.stride = append(t.size, n), append(t.stride, int64(st))
		if n == 0 {
			t.numel = 0
			continue
		}
		if t.numel > 0 && int64(n) > s.numel/t.numel {
			return nil, fmt.Errorf("shape %v: more elements than its storage's %d", []any(*size), s.numel)
		}
		t.numel *= int64(n)
		if st > 0 && int64(n-1) > (math.MaxInt64-last)/int64(st) {
			return nil, fmt.Errorf("dimension %d: offset overflows", d)
		}
		last += int64(n-1) * int64(st)
	}
	if t.numel > 0 && last >= s.numel {
		return nil, fmt.Errorf("elements up to storage offset %d, outside its storage of %d", last, s.numel)
	}
	return t, nil
}

// float32s copies a tensor into row-major float32, honouring its offset and
// strides (views into a shared storage).
func (a *torchArchive) float32s(t *torchTensor) ([]float32, error) {
	if c := t.storage.class.name; !materialisedClasses[c] {
		return nil, fmt.Errorf("storage %s is not supported (Float, Half, BFloat16, Double, Long)", c)
	}
	if a.budget -= t.numel; a.budget < 0 {
		return nil, fmt.Errorf("views materialised so far exceed twice the %d elements of the archive's storages", a.stored)
	}
	raw, err := a.storageBytes(t.storage)
	if err != nil {
		return nil, err
	}
	get := elementReader(t.storage.class, raw)
	out := make([]float32, t.numel)
	idx := make([]int, len(t.size))
	for i := range out {
		off := t.offset
		for d, x := range idx {
			off += int64(x) * t.stride[d]
		}
		out[i] = get(off)
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < t.size[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out, nil
}

// storageBytes reads a storage record once.
func (a *torchArchive) storageBytes(s *torchStorage) ([]byte, error) {
	if b, ok := a.raw[s.key]; ok {
		return b, nil
	}
	b, err := a.read(s.entry, uint64(s.numel)*uint64(s.class.itemSize))
	if err != nil {
		return nil, err
	}
	a.raw[s.key] = b
	return b, nil
}

// elementReader converts element i of a little-endian storage to float32.
func elementReader(c *storageClass, raw []byte) func(i int64) float32 {
	switch c.name {
	case "HalfStorage":
		return func(i int64) float32 { return float16.FromBits(binary.LittleEndian.Uint16(raw[2*i:])).Float32() }
	case "BFloat16Storage":
		return func(i int64) float32 { return bfloat16.FromBits(binary.LittleEndian.Uint16(raw[2*i:])).Float32() }
	case "DoubleStorage":
		return func(i int64) float32 { return float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))) }
	case "LongStorage":
		return func(i int64) float32 { return float32(int64(binary.LittleEndian.Uint64(raw[8*i:]))) }
	}
	return func(i int64) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])) }
}
