package datasets

import (
	"fmt"
	"os"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/endian"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// packedSchema is the Arrow layout of packed/v1 blocks of length L.
func packedSchema(L int) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "input_ids", Type: arrow.FixedSizeListOfNonNullable(int32(L), arrow.PrimitiveTypes.Int32)},
		{Name: "attention_mask", Type: arrow.FixedSizeListOfNonNullable(int32(L), arrow.PrimitiveTypes.Int8)},
	}, nil)
}

// PackedArrow is a memory-mapped packed/v1 Arrow file: rows are views into the
// mapping, nothing is copied.
type PackedArrow struct {
	L       int
	path    string
	rows    int
	batches []packedBatch
	data    []byte
	reader  *ipc.FileReader
}

type packedBatch struct {
	start int
	ids   []int32
	mask  []int8
	rec   arrow.RecordBatch
}

// OpenPackedArrow maps an Arrow IPC packed/v1 file and checks its schema.
func OpenPackedArrow(path string) (*PackedArrow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: empty Arrow file", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	p := &PackedArrow{data: data, path: path}
	if err := p.load(path); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *PackedArrow) load(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: corrupt Arrow file: %v", path, r)
		}
	}()
	if err := checkArrowFile(p.data); err != nil {
		return fmt.Errorf("%s: not a readable Arrow IPC file: %w", path, err)
	}
	// No byte swapping: arrow-go swaps a non-native file's buffers in place,
	// and these are the read-only mapping (a write there is a fault no
	// recover catches; found by FuzzOpenPackedSplit). pack writes
	// little-endian files; others are refused below.
	p.reader, err = ipc.NewMappedFileReader(p.data, ipc.WithEnsureNativeEndian(false))
	if err != nil {
		return fmt.Errorf("%s: not an Arrow IPC file (truncated or corrupt?): %w", path, err)
	}
	s := p.reader.Schema()
	if !s.IsNativeEndian() {
		return fmt.Errorf("%s: Arrow file of %s byte order; only the machine's (%s) is read", path, s.Endianness(), endian.NativeEndian)
	}
	if s.NumFields() != 2 || s.Field(0).Name != "input_ids" || s.Field(1).Name != "attention_mask" {
		return fmt.Errorf("%s: schema %v, want input_ids and attention_mask", path, s)
	}
	ft, ok := s.Field(0).Type.(*arrow.FixedSizeListType)
	if !ok || ft.Elem().ID() != arrow.INT32 || ft.Len() <= 0 {
		return fmt.Errorf("%s: column input_ids is %v, want fixed_size_list<int32> of a positive length", path, s.Field(0).Type)
	}
	if mt, ok := s.Field(1).Type.(*arrow.FixedSizeListType); !ok || mt.Elem().ID() != arrow.INT8 || mt.Len() != ft.Len() {
		return fmt.Errorf("%s: column attention_mask is %v, want fixed_size_list<int8> of input_ids' length %d", path, s.Field(1).Type, ft.Len())
	}
	p.L = int(ft.Len())
	for i := 0; i < p.reader.NumRecords(); i++ {
		rec, err := p.reader.RecordBatch(i)
		if err != nil {
			return fmt.Errorf("%s: record batch %d: %w", path, i, err)
		}
		rec.Retain()
		ids := rec.Column(0).(*array.FixedSizeList).ListValues().(*array.Int32).Int32Values()
		mask := rec.Column(1).(*array.FixedSizeList).ListValues().(*array.Int8).Int8Values()
		n := int(rec.NumRows())
		if len(ids) != n*p.L || len(mask) != n*p.L {
			return fmt.Errorf("%s: record batch %d has %d ids for %d rows of %d", path, i, len(ids), n, p.L)
		}
		p.batches = append(p.batches, packedBatch{start: p.rows, ids: ids, mask: mask, rec: rec})
		p.rows += n
	}
	return nil
}

// NumRows is the number of blocks.
func (p *PackedArrow) NumRows() int { return p.rows }

// Row returns block i (views into the mapping; valid until Close).
func (p *PackedArrow) Row(i int) (ids []int32, mask []int8) {
	lo, hi := 0, len(p.batches)
	for lo+1 < hi { // last batch with start <= i
		mid := (lo + hi) / 2
		if p.batches[mid].start <= i {
			lo = mid
		} else {
			hi = mid
		}
	}
	b := p.batches[lo]
	off := (i - b.start) * p.L
	return b.ids[off : off+p.L], b.mask[off : off+p.L]
}

// Close unmaps the file.
func (p *PackedArrow) Close() error {
	for _, b := range p.batches {
		b.rec.Release()
	}
	p.batches = nil
	if p.reader != nil {
		p.reader.Close()
	}
	if p.data != nil {
		err := syscall.Munmap(p.data)
		p.data = nil
		return err
	}
	return nil
}

// Rows gathers the given blocks, concatenated row-major: ids [len(idx)·L] and
// the attention mask as float32 (1 counts, 0 is padding).
func (p *PackedArrow) Rows(idx []int) (ids []int32, mask []float32) {
	ids = make([]int32, 0, len(idx)*p.L)
	mask = make([]float32, 0, len(idx)*p.L)
	for _, i := range idx {
		r, m := p.Row(i)
		ids = append(ids, r...)
		for _, v := range m {
			mask = append(mask, float32(v))
		}
	}
	return ids, mask
}
