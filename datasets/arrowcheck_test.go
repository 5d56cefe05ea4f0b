package datasets

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// arrowFile writes one record batch of the given columns as an Arrow IPC file
// and returns its bytes.
func arrowFile(t *testing.T, schema *arrow.Schema, cols []arrow.Array, meta arrow.Metadata, opts ...ipc.Option) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, append([]ipc.Option{ipc.WithSchema(schema)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	rec := array.NewRecordBatchWithMetadata(schema, cols, int64(cols[0].Len()), meta)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// packedColumns builds the two packed/v1 columns of one block of length 4.
func packedColumns(t *testing.T) []arrow.Array {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := packedSchema(4)
	ids := array.NewFixedSizeListBuilderWithField(mem, 4, schema.Field(0).Type.(*arrow.FixedSizeListType).ElemField())
	mask := array.NewFixedSizeListBuilderWithField(mem, 4, schema.Field(1).Type.(*arrow.FixedSizeListType).ElemField())
	ids.Append(true)
	mask.Append(true)
	for i := range 4 {
		ids.ValueBuilder().(*array.Int32Builder).Append(int32(i))
		mask.ValueBuilder().(*array.Int8Builder).Append(1)
	}
	return []arrow.Array{ids.NewArray(), mask.NewArray()}
}

// claimHugeSizes sets the uncompressed size (the 8 bytes before each zstd
// frame) of every compressed buffer to 4 TB.
func claimHugeSizes(t *testing.T, data []byte) []byte {
	t.Helper()
	n := 0
	for i := 8; i+4 <= len(data); i++ {
		if bytes.Equal(data[i:i+4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			binary.LittleEndian.PutUint64(data[i-8:], 1<<42)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no zstd frame in the file")
	}
	return data
}

// longMessageMetadata sets the length of the first record batch message's
// custom metadata vector to 2^30 (arrow-go would make two slices of that many
// strings before reading one).
func longMessageMetadata(t *testing.T, data []byte) []byte {
	t.Helper()
	end := len(data) - 10
	size := int(binary.LittleEndian.Uint32(data[end:]))
	f := &fbCheck{b: data[end-size : end]}
	root, _ := f.table(0)
	start, n, err := f.vector(root, footerRecordBatches, blockSize)
	if err != nil || n == 0 {
		t.Fatalf("no record batch block: %v", err)
	}
	offset := int(binary.LittleEndian.Uint64(f.b[start:]))
	m := &fbCheck{b: data[offset+8:]}
	msg, _ := m.table(0)
	pos, err := m.field(msg, messageMetadata)
	if err != nil || pos == 0 {
		t.Fatalf("the message has no custom metadata: %v", err)
	}
	u, _ := m.u32(pos)
	binary.LittleEndian.PutUint32(m.b[pos+u:], 1<<30)
	return data
}

// TestCheckArrowFile: files arrow-go would read into a huge allocation, or
// that are not packed/v1's layout, are refused with what is wrong before
// arrow-go reads them (a compressed buffer claiming 4 TB killed the process
// with a fatal out-of-memory).
func TestCheckArrowFile(t *testing.T) {
	packed := packedSchema(4)
	mem := memory.NewGoAllocator()
	dictType := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(mem, dictType).(*array.BinaryDictionaryBuilder)
	if err := db.AppendString("a"); err != nil {
		t.Fatal(err)
	}
	sb := array.NewStringBuilder(mem)
	sb.Append("x")
	withText := func(typ arrow.DataType) *arrow.Schema {
		return arrow.NewSchema([]arrow.Field{packed.Field(0), {Name: "text", Type: typ}}, nil)
	}
	ids := packedColumns(t)[0]
	m3 := array.NewFixedSizeListBuilderWithField(mem, 3, packedSchema(3).Field(1).Type.(*arrow.FixedSizeListType).ElemField())
	m3.Append(true)
	m3.ValueBuilder().(*array.Int8Builder).AppendValues([]int8{1, 1, 1}, nil)
	mask3 := m3.NewArray()
	cases := []struct {
		name string
		data []byte
		want string // empty: opens
	}{
		{"uncompressed with batch metadata", arrowFile(t, packed, packedColumns(t), arrow.NewMetadata([]string{"k"}, []string{"v"})), ""},
		{"zstd", arrowFile(t, packed, packedColumns(t), arrow.Metadata{}, ipc.WithZstd()), "record batch 0: compressed body"},
		{"lz4", arrowFile(t, packed, packedColumns(t), arrow.Metadata{}, ipc.WithLZ4()), "record batch 0: compressed body"},
		{"zstd claiming 4 TB", claimHugeSizes(t, arrowFile(t, packed, packedColumns(t), arrow.Metadata{}, ipc.WithZstd())), "compressed body"},
		{"message metadata of 2^30 entries", longMessageMetadata(t, arrowFile(t, packed, packedColumns(t), arrow.NewMetadata([]string{"k"}, []string{"v"}))), "message metadata: vector of 1073741824 elements"},
		{"string column", arrowFile(t, withText(arrow.BinaryTypes.String), []arrow.Array{ids, sb.NewArray()}, arrow.Metadata{}), `field "text" is of Arrow type Utf8`},
		{"dictionary column", arrowFile(t, withText(dictType), []arrow.Array{ids, db.NewArray()}, arrow.Metadata{}), `dictionary`},
		{"int32 mask", arrowFile(t, arrow.NewSchema([]arrow.Field{packed.Field(0), {Name: "attention_mask", Type: packed.Field(0).Type}}, nil),
			[]arrow.Array{ids, ids}, arrow.Metadata{}), "column attention_mask is fixed_size_list<item: int32>[4], want fixed_size_list<int8> of input_ids' length 4"},
		{"mask of another length", arrowFile(t, arrow.NewSchema([]arrow.Field{packed.Field(0), packedSchema(3).Field(1)}, nil),
			[]arrow.Array{ids, mask3}, arrow.Metadata{}), "column attention_mask is fixed_size_list<item: int8>[3]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.arrow")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := OpenPackedArrow(path)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := p.Row(0); len(got) != 4 || got[3] != 3 {
					t.Errorf("row 0 = %v", got)
				}
				p.Close()
				return
			}
			if err == nil {
				p.Close()
				t.Fatalf("opened; want an error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want the file and %q", err, c.want)
			}
		})
	}
}
