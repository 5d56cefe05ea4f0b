package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Footer limits: the thrift decoders of parquet-go (and arrow-go) allocate a
// list's claimed length times its element's size before they decode one
// element (a 786-byte file claimed 25 GB; FuzzReadDocsParquet input
// fb726674182425e8), and skip unknown nested structs by recursion.
const (
	footerMaxDepth = 64 // nested structs, lists and maps
	// footerElemBytes bounds the size a decoder gives one element of a list
	// of structs (parquet-go's largest footer struct, ColumnChunk, is 560
	// bytes), and footerBudget the sum over every list: at least 64 MiB, and
	// 128 bytes for each byte of the footer (TestPageGuardOtherWriters: the
	// footers of parquet-go's test data, from many writers, charge at most 49
	// a byte).
	footerElemBytes    = 1024
	footerBudgetMin    = 64 << 20
	footerBudgetFactor = 128
)

// errFooter: a footer's thrift encoding claims more than its bytes hold.
var errFooter = errors.New("the footer's encoding is damaged")

// checkFooter walks the thrift compact encoding of a Parquet footer without
// decoding it and fails where a list, set or map claims more elements than
// the bytes left could hold (at least one byte each), where structures nest
// deeper than footerMaxDepth, or where the decoders would allocate more than
// the footer's budget for its lists in all.
func checkFooter(footer []byte) error {
	w := footerWalk{b: footer, budget: max(footerBudgetMin, footerBudgetFactor*int64(len(footer)))}
	if err := w.structure(0); err != nil {
		return fmt.Errorf("%w: %v at byte %d of %d", errFooter, err, w.i, len(footer))
	}
	return nil
}

// footerWalk is checkFooter's position in the footer and the allocation
// budget left.
type footerWalk struct {
	b      []byte
	i      int
	budget int64
}

// Thrift compact protocol types.
const (
	ctTrue, ctFalse, ctByte, ctI16, ctI32, ctI64, ctDouble, ctBinary, ctList, ctSet, ctMap, ctStruct, ctUUID = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
)

func (w *footerWalk) byte() (byte, error) {
	if w.i >= len(w.b) {
		return 0, errors.New("cut short")
	}
	w.i++
	return w.b[w.i-1], nil
}

func (w *footerWalk) varint() (uint64, error) {
	v, n := binary.Uvarint(w.b[w.i:])
	if n <= 0 {
		return 0, errors.New("a bad varint")
	}
	w.i += n
	return v, nil
}

// structure walks a struct's fields up to its stop byte.
func (w *footerWalk) structure(depth int) error {
	if depth > footerMaxDepth {
		return errors.New("nested too deep")
	}
	for {
		h, err := w.byte()
		if err != nil {
			return err
		}
		if h == 0 {
			return nil
		}
		if h>>4 == 0 { // a field id of its own
			if _, err := w.varint(); err != nil {
				return err
			}
		}
		if t := h & 0x0f; t != ctTrue && t != ctFalse { // booleans are in the header
			if err := w.value(t, depth); err != nil {
				return err
			}
		}
	}
}

// value walks one value of type t.
func (w *footerWalk) value(t byte, depth int) error {
	switch t {
	case ctTrue, ctFalse, ctByte: // a list's booleans take a byte each
		_, err := w.byte()
		return err
	case ctI16, ctI32, ctI64:
		_, err := w.varint()
		return err
	case ctDouble, ctUUID:
		size := 8
		if t == ctUUID {
			size = 16
		}
		if len(w.b)-w.i < size {
			return errors.New("cut short")
		}
		w.i += size
		return nil
	case ctBinary:
		n, err := w.varint()
		if err != nil {
			return err
		}
		if n > uint64(len(w.b)-w.i) {
			return fmt.Errorf("a string of %d bytes", n)
		}
		w.i += int(n)
		return nil
	case ctList, ctSet:
		return w.list(depth + 1)
	case ctMap:
		return w.mapping(depth + 1)
	case ctStruct:
		return w.structure(depth + 1)
	}
	return fmt.Errorf("a value of type %d", t)
}

// list walks a list or set: its header, then its elements.
func (w *footerWalk) list(depth int) error {
	if depth > footerMaxDepth {
		return errors.New("nested too deep")
	}
	h, err := w.byte()
	if err != nil {
		return err
	}
	n, t := uint64(h>>4), h&0x0f
	if n == 15 {
		if n, err = w.varint(); err != nil {
			return err
		}
	}
	if err := w.claim(n, 1, t); err != nil {
		return err
	}
	for range n {
		if err := w.value(t, depth); err != nil {
			return err
		}
	}
	return nil
}

// mapping walks a map: its size, key and value types, then its entries.
func (w *footerWalk) mapping(depth int) error {
	if depth > footerMaxDepth {
		return errors.New("nested too deep")
	}
	n, err := w.varint()
	if err != nil || n == 0 {
		return err
	}
	kv, err := w.byte()
	if err != nil {
		return err
	}
	if err := w.claim(n, 2, kv>>4); err != nil {
		return err
	}
	if err := w.claim(n, 1, kv&0x0f); err != nil {
		return err
	}
	for range n {
		if err := w.value(kv>>4, depth); err != nil {
			return err
		}
		if err := w.value(kv&0x0f, depth); err != nil {
			return err
		}
	}
	return nil
}

// claim checks n elements of type t, each at least least bytes, against the
// bytes left, and charges what a decoder allocates for them to the budget.
func (w *footerWalk) claim(n uint64, least int, t byte) error {
	if t < ctTrue || t > ctUUID {
		return fmt.Errorf("elements of type %d", t)
	}
	if n > uint64(len(w.b)-w.i)/uint64(max(least, 1)) {
		return fmt.Errorf("%d elements claimed with %d bytes left", n, len(w.b)-w.i)
	}
	size := int64(8)
	switch t {
	case ctBinary:
		size = 24
	case ctStruct, ctList, ctSet, ctMap:
		size = footerElemBytes
	}
	if w.budget -= int64(n) * size; w.budget < 0 {
		return errors.New("lists claiming more than the footer's allocation budget")
	}
	return nil
}
