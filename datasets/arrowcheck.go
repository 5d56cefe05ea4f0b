package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// checkArrowFooter bounds what arrow-go will allocate from an Arrow IPC file's
// footer before the file is handed to it. arrow-go sizes slices by the element
// counts the flatbuffers claim (schema fields, field children, custom metadata)
// without checking them against the buffer: a 352-byte file asked for 71 GB and
// the process died of a fatal out-of-memory that no recover catches (found by
// FuzzOpenPackedSplit; issue 19). Every vector on those paths must fit in the
// footer, and the schema may hold at most maxArrowFields fields in all.
func checkArrowFooter(data []byte) error {
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
	return c.footer(root)
}

// maxArrowFields bounds the fields (children included) of a packed/v1 schema,
// which has four; the depth of nesting is bounded by the same budget.
const maxArrowFields = 16

// Field numbers of the Arrow flatbuffer tables (format/File.fbs, Schema.fbs).
const (
	footerSchema, footerDictionaries, footerRecordBatches, footerMetadata = 1, 2, 3, 4
	schemaFields, schemaMetadata, schemaFeatures                          = 1, 2, 3
	fieldName, fieldChildren, fieldMetadata                               = 0, 5, 6
	keyValueKey, keyValueValue                                            = 0, 1
	blockSize                                                             = 24 // struct Block: offset, metaDataLength (padded), bodyLength
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

func (c *fbCheck) u16(pos int) (int, error) {
	if pos < 0 || pos+2 > len(c.b) {
		return 0, fmt.Errorf("offset %d outside the %d-byte buffer", pos, len(c.b))
	}
	return int(binary.LittleEndian.Uint16(c.b[pos:])), nil
}

// field returns the position of field i of table t (0 when absent).
func (c *fbCheck) field(t, i int) (int, error) {
	so, _ := c.u32(t)
	vt := t - int(int32(so))
	vtSize, _ := c.u16(vt)
	if 4+2*i+2 > vtSize {
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
	for _, f := range []int{footerDictionaries, footerRecordBatches} {
		if _, _, err := c.vector(t, f, blockSize); err != nil {
			return fmt.Errorf("footer blocks: %w", err)
		}
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
	if _, _, err := c.vector(t, fieldName, 1); err != nil {
		return err
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
