package datasets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/endian"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// An Arrow file whose schema declares the other byte order is refused by name
// before any record batch is read: arrow-go would swap its buffers in place,
// in the read-only mapping (a fault no recover catches; the regression input
// testdata/fuzz/FuzzOpenPackedSplit/853e1099fb43da7e).
func TestOpenPackedArrowOtherByteOrder(t *testing.T) {
	other := endian.BigEndian
	if endian.NativeEndian == endian.BigEndian {
		other = endian.LittleEndian
	}
	schema := packedSchema(4).WithEndianness(other)
	path := filepath.Join(t.TempDir(), "train.arrow")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	for col, vals := range [][]int32{{1, 2, 3, 4}, {1, 1, 1, 1}} {
		lb := b.Field(col).(*array.FixedSizeListBuilder)
		lb.Append(true)
		for _, v := range vals {
			switch vb := lb.ValueBuilder().(type) {
			case *array.Int32Builder:
				vb.Append(v)
			case *array.Int8Builder:
				vb.Append(int8(v))
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = OpenPackedArrow(path)
	if err == nil || !strings.Contains(err.Error(), "byte order") || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenPackedArrow of a %s file: err = %v, want a refusal naming the file and the byte order", other, err)
	}
}
