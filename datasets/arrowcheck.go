package datasets

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
)

// checkArrowFile bounds what arrow-go will allocate from an Arrow IPC file
// before the file is handed to it. arrow-go sizes slices by the element counts
// the flatbuffers claim (schema fields, field children, custom metadata, union
// type ids) without checking them against the buffer, and it decompresses a
// compressed buffer into an allocation of the size the body's first 8 bytes
// claim. Such a file kills the process with a fatal out-of-memory that no
// recover catches: a 352-byte file asked for 71 GB (found by
// FuzzOpenPackedSplit; issue 19), and a zstd buffer claiming 4 TB does the same
// (TestCheckArrowFile). So before arrow-go sees the file:
//   - every vector on those paths fits in its flatbuffer, and the schema holds
//     at most maxArrowFields fields in all;
//   - every field is an integer or a fixed-size list, none dictionary-encoded,
//     and the file has no dictionary batches (packed/v1 is two fixed-size lists
//     of integers);
//   - every record batch's message is a record batch whose body is not
//     compressed (pack writes uncompressed files, which are mapped, not copied).
//
// The walk reads the flatbuffers as flatbuffers does (fbCheck.field): a field
// it missed would be a vector arrow-go reads unchecked.
func checkArrowFile(data []byte) error {
	const magic = "ARROW1"
	if len(data) < 2*len(magic)+4 || string(data[len(data)-len(magic):]) != magic {
		return errors.New("no Arrow IPC file trailer (truncated?)")
	}
	end := len(data) - len(magic) - 4
	size := int(int32(binary.LittleEndian.Uint32(data[end:])))
	if size <= 0 || size > end {
		return fmt.Errorf("footer length %d does not fit in the %d-byte file", size, len(data))
	}
	c := &fbCheck{b: data[end-size : end], budget: maxArrowFields}
	root, err := c.table(0)
	if err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	if err := c.footer(root); err != nil {
		return err
	}
	start, n, err := c.vector(root, footerRecordBatches, blockSize)
	if err != nil {
		return fmt.Errorf("footer blocks: %w", err)
	}
	for i := 0; i < n; i++ {
		if err := checkBatchMessage(data, c.b[start+i*blockSize:]); err != nil {
			return fmt.Errorf("record batch %d: %w", i, err)
		}
	}
	return nil
}

// maxArrowFields bounds the fields (children included) of a packed/v1 schema,
// which has four; the depth of nesting is bounded by the same budget.
const maxArrowFields = 16

// Field numbers of the Arrow flatbuffer tables (format/File.fbs, Schema.fbs).
const (
	footerSchema, footerDictionaries, footerRecordBatches, footerMetadata   = 1, 2, 3, 4
	schemaFields, schemaMetadata, schemaFeatures                            = 1, 2, 3
	fieldName, fieldTypeType, fieldDictionary, fieldChildren, fieldMetadata = 0, 2, 4, 5, 6
	keyValueKey, keyValueValue                                              = 0, 1
	blockSize                                                               = 24 // struct Block: offset, metaDataLength (padded), bodyLength
	messageHeaderType, messageHeader, messageMetadata                       = 1, 2, 4
	batchNodes, batchBuffers, batchCompression, batchVariadicCounts         = 1, 2, 3, 4
	fieldNodeSize, bufferSize                                               = 16, 16 // structs FieldNode and Buffer
	headerRecordBatch                                                       = 3      // MessageHeader.RecordBatch
	typeInt, typeFixedSizeList                                              = 2, 16  // Type.Int, Type.FixedSizeList
)

// fbCheck walks one flatbuffer with every offset bounds-checked.
type fbCheck struct {
	b      []byte
	budget int // fields still allowed
}

func (c *fbCheck) u32(pos int) (int, error) {
	if pos < 0 || pos+4 > len(c.b) {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(c.b))
	}
	return int(binary.LittleEndian.Uint32(c.b[pos:])), nil
}

// table follows the uoffset at pos to a table and checks its vtable.
func (c *fbCheck) table(pos int) (int, error) {
	u, err := c.u32(pos)
	if err != nil {
		return 0, err
	}
	t := pos + u
	so, err := c.u32(t)
	if err != nil {
		return 0, err
	}
	vt := t - int(int32(so))
	vtSize, err := c.u16(vt)
	if err != nil {
		return 0, err
	}
	if vtSize < 4 || vt+vtSize > len(c.b) {
		return 0, fmt.Errorf("vtable of %d bytes at %d outside the buffer", vtSize, vt)
	}
	return t, nil
}

// u8Field reads the ubyte field i of table t (a union's type), 0 when absent.
func (c *fbCheck) u8Field(t, i int) (int, error) {
	pos, err := c.field(t, i)
	if err != nil || pos == 0 {
		return 0, err
	}
	if pos >= len(c.b) {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(c.b))
	}
	return int(c.b[pos]), nil
}

func (c *fbCheck) u16(pos int) (int, error) {
	if pos < 0 || pos+2 > len(c.b) {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(c.b))
	}
	return int(binary.LittleEndian.Uint16(c.b[pos:])), nil
}

// field returns the position of field i of table t (0 when absent). A field is
// present when its slot starts inside the vtable, as flatbuffers reads it (a
// vtable of odd size has a last slot that ends past it; found by
// FuzzOpenPackedSplit, testdata/fuzz/FuzzOpenPackedSplit/027760a81e32999b).
func (c *fbCheck) field(t, i int) (int, error) {
	so, _ := c.u32(t)
	vt := t - int(int32(so))
	vtSize, _ := c.u16(vt)
	if 4+2*i >= vtSize {
		return 0, nil
	}
	off, err := c.u16(vt + 4 + 2*i)
	if err != nil || off == 0 {
		return 0, err
	}
	return t + off, nil
}

// vector checks the vector that field i of table t refers to (elements of elem
// bytes) and returns the position of its first element and its length.
func (c *fbCheck) vector(t, i, elem int) (start, n int, err error) {
	pos, err := c.field(t, i)
	if err != nil || pos == 0 {
		return 0, 0, err
	}
	u, err := c.u32(pos)
	if err != nil {
		return 0, 0, err
	}
	v := pos + u
	if n, err = c.u32(v); err != nil {
		return 0, 0, err
	}
	if n > (len(c.b)-v-4)/elem {
		return 0, 0, fmt.Errorf("vector of %d elements at %d does not fit in the %d-byte buffer", n, v, len(c.b))
	}
	return v + 4, n, nil
}

// tables checks every table of the vector field i of t with fn.
func (c *fbCheck) tables(t, i int, fn func(int) error) error {
	start, n, err := c.vector(t, i, 4)
	if err != nil {
		return err
	}
	for k := 0; k < n; k++ {
		sub, err := c.table(start + 4*k)
		if err != nil {
			return err
		}
		if err := fn(sub); err != nil {
			return err
		}
	}
	return nil
}

func (c *fbCheck) footer(t int) error {
	_, dicts, err := c.vector(t, footerDictionaries, blockSize)
	if err != nil {
		return fmt.Errorf("footer blocks: %w", err)
	}
	if dicts > 0 {
		return fmt.Errorf("%d dictionary batches (packed/v1 has none)", dicts)
	}
	if err := c.tables(t, footerMetadata, c.keyValue); err != nil {
		return fmt.Errorf("footer metadata: %w", err)
	}
	pos, err := c.field(t, footerSchema)
	if err != nil || pos == 0 {
		return err // no schema: arrow-go reports it
	}
	s, err := c.table(pos)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return c.schema(s)
}

func (c *fbCheck) schema(t int) error {
	if _, _, err := c.vector(t, schemaFeatures, 8); err != nil {
		return fmt.Errorf("schema features: %w", err)
	}
	if err := c.tables(t, schemaMetadata, c.keyValue); err != nil {
		return fmt.Errorf("schema metadata: %w", err)
	}
	if err := c.tables(t, schemaFields, c.fieldTable); err != nil {
		return fmt.Errorf("schema fields: %w", err)
	}
	return nil
}

// fieldTable checks one Field table and, within the budget, its children.
func (c *fbCheck) fieldTable(t int) error {
	if c.budget--; c.budget < 0 {
		return fmt.Errorf("more than %d fields (a packed/v1 schema has 4)", maxArrowFields)
	}
	start, n, err := c.vector(t, fieldName, 1)
	if err != nil {
		return err
	}
	name := string(c.b[start : start+n])
	typ, err := c.u8Field(t, fieldTypeType) // Type.NONE (0) when absent
	if err != nil {
		return err
	}
	if typ != typeInt && typ != typeFixedSizeList {
		return fmt.Errorf("field %q is of Arrow type %s (packed/v1 holds fixed-size lists of integers)", name, arrowTypeName(typ))
	}
	if pos, err := c.field(t, fieldDictionary); err != nil || pos != 0 {
		return cmp.Or(err, fmt.Errorf("field %q is dictionary-encoded (packed/v1 has no dictionaries)", name))
	}
	if err := c.tables(t, fieldMetadata, c.keyValue); err != nil {
		return err
	}
	return c.tables(t, fieldChildren, c.fieldTable)
}

func (c *fbCheck) keyValue(t int) error {
	for _, f := range []int{keyValueKey, keyValueValue} {
		if _, _, err := c.vector(t, f, 1); err != nil {
			return err
		}
	}
	return nil
}

// checkBatchMessage checks the message that footer block blk (24 bytes: offset,
// metadata length, body length) points at: an encapsulated Message flatbuffer
// whose header is an uncompressed RecordBatch with vectors that fit.
func checkBatchMessage(data, blk []byte) error {
	offset := int64(binary.LittleEndian.Uint64(blk))
	meta := int64(int32(binary.LittleEndian.Uint32(blk[8:])))
	if offset < 0 || meta < 8 || meta > int64(len(data)) || offset > int64(len(data))-meta {
		return fmt.Errorf("message of %d bytes at offset %d outside the %d-byte file", meta, offset, len(data))
	}
	buf := data[offset : offset+meta]
	prefix := 4 // messages before Arrow 0.15 have no continuation marker
	if binary.LittleEndian.Uint32(buf) == 0xFFFFFFFF {
		prefix = 8
	}
	c := &fbCheck{b: buf[prefix:]}
	msg, err := c.table(0)
	if err != nil {
		return fmt.Errorf("message: %w", err)
	}
	kind, err := c.u8Field(msg, messageHeaderType) // MessageHeader.NONE (0) when absent
	if err != nil {
		return err
	}
	if kind != headerRecordBatch {
		return fmt.Errorf("message of kind %d, want a record batch (%d)", kind, headerRecordBatch)
	}
	if err := c.tables(msg, messageMetadata, c.keyValue); err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	pos, err := c.field(msg, messageHeader)
	if err != nil || pos == 0 {
		return cmp.Or(err, errors.New("message without its record batch"))
	}
	rb, err := c.table(pos)
	if err != nil {
		return fmt.Errorf("record batch header: %w", err)
	}
	for _, v := range []struct{ field, elem int }{{batchNodes, fieldNodeSize}, {batchBuffers, bufferSize}, {batchVariadicCounts, 8}} {
		if _, _, err := c.vector(rb, v.field, v.elem); err != nil {
			return fmt.Errorf("record batch header: %w", err)
		}
	}
	if pos, err := c.field(rb, batchCompression); err != nil || pos != 0 {
		return cmp.Or(err, errors.New("compressed body (packed/v1 files are uncompressed: they are mapped, not copied)"))
	}
	return nil
}

// arrowTypeName names a value of the Arrow Type union (format/Schema.fbs).
func arrowTypeName(t int) string {
	names := []string{"NONE", "Null", "Int", "FloatingPoint", "Binary", "Utf8", "Bool", "Decimal", "Date", "Time",
		"Timestamp", "Interval", "List", "Struct", "Union", "FixedSizeBinary", "FixedSizeList", "Map", "Duration",
		"LargeBinary", "LargeUtf8", "LargeList", "RunEndEncoded", "BinaryView", "Utf8View", "ListView", "LargeListView"}
	if t < len(names) {
		return names[t]
	}
	return fmt.Sprintf("#%d", t)
}
