package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// leafShape is what the page guard needs of a leaf column to count the values
// of its pages: its maximum repetition and definition levels, and the width
// of its values as parquet-go decodes them (0: not of fixed width); known is
// false for a column the guard was told nothing of.
type leafShape struct {
	maxRep, maxDef, width int
	known                 bool
}

// leafShapes are the shapes of pf's leaf columns, by column index.
func leafShapes(pf *parquet.File) map[int]leafShape {
	shapes := map[int]leafShape{}
	s := pf.Schema()
	for _, path := range s.Columns() {
		leaf, ok := s.Lookup(path...)
		if !ok {
			continue
		}
		shape := leafShape{maxRep: leaf.MaxRepetitionLevel, maxDef: leaf.MaxDefinitionLevel, known: true}
		if kind, isLeaf := leafKind(leaf); isLeaf {
			shape.width = kindWidth(kind, leaf.Node.Type().Length())
		}
		shapes[leaf.ColumnIndex] = shape
	}
	return shapes
}

// kindWidth is the byte width of a value of kind (length: a fixed-length byte
// array's), 0 for BOOLEAN and BYTE_ARRAY.
func kindWidth(kind parquet.Kind, length int) int {
	switch kind {
	case parquet.Int32, parquet.Float:
		return 4
	case parquet.Int64, parquet.Double:
		return 8
	case parquet.Int96:
		return 12
	case parquet.FixedLenByteArray:
		return max(length, 0)
	}
	return 0
}

// plainWidth is the width of the values of the data or dictionary page with
// header h in a column of shape leaf when they are stored plain, else 0.
func plainWidth(h *format.PageHeader, leaf leafShape) int {
	switch {
	case h.Type == format.DataPage && h.DataPageHeader.V.Encoding == format.Plain,
		h.Type == format.DataPageV2 && h.DataPageHeaderV2.V.Encoding == format.Plain,
		h.Type == format.DictionaryPage && (h.DictionaryPageHeader.V.Encoding == format.Plain || h.DictionaryPageHeader.V.Encoding == format.PlainDictionary):
		return leaf.width
	}
	return 0
}

// valuesFit checks that data, a data or dictionary page's data as parquet-go
// decodes it (a page v2's values alone), holds width bytes for each value its
// levels define (each value a dictionary page states). parquet-go decodes such a page in place and checks the capacity of
// its buffer, not its length, against those values: a page cut short gives
// values read from whatever its pooled buffer held before (FuzzScanTokens
// input cd505a43e2010ee7: 6 ids where the page holds 5, the sixth 0 or 5 from
// run to run).
func valuesFit(h *format.PageHeader, data []byte, leaf leafShape, width int) error {
	var defined int64
	values := data
	switch h.Type {
	case format.DictionaryPage:
		defined = int64(h.DictionaryPageHeader.V.NumValues)
	case format.DataPageV2:
		v2 := h.DataPageHeaderV2.V
		defined = int64(v2.NumValues) - int64(v2.NumNulls)
	default:
		v1 := h.DataPageHeader.V
		if (leaf.maxRep > 0 && v1.RepetitionLevelEncoding != format.RLE) || (leaf.maxDef > 0 && v1.DefinitionLevelEncoding != format.RLE) {
			return nil // levels bit-packed (deprecated): not counted here
		}
		n := int64(v1.NumValues)
		defined = n
		var err error
		if leaf.maxRep > 0 {
			if _, values, err = levelsV1(values); err != nil {
				return fmt.Errorf("repetition levels: %w", err)
			}
		}
		if leaf.maxDef > 0 {
			var def []byte
			if def, values, err = levelsV1(values); err != nil {
				return fmt.Errorf("definition levels: %w", err)
			}
			if defined, err = countLevel(def, bits.Len(uint(leaf.maxDef)), n, leaf.maxDef); err != nil {
				return fmt.Errorf("definition levels: %w", err)
			}
		}
	}
	if need := defined * int64(width); int64(len(values)) < need {
		what := "its levels define"
		if h.Type == format.DictionaryPage {
			what = "its header states"
		}
		return fmt.Errorf("%s %d values of %d bytes, its data holds %d bytes", what, defined, width, len(values))
	}
	return nil
}

// errLevels: a page's levels run past its data.
var errLevels = errors.New("cut short")

// levelsV1 splits a data page v1's leading levels (a 4-byte length, then as
// many bytes of RLE) from what follows.
func levelsV1(data []byte) (levels, rest []byte, err error) {
	if len(data) < 4 {
		return nil, nil, errLevels
	}
	n := binary.LittleEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) {
		return nil, nil, errLevels
	}
	return data[4 : 4+n], data[4+n:], nil
}

// countLevel counts the levels equal to want among the first n of levels,
// RLE / bit-packed hybrid encoded with bitWidth bits each (the levels that
// are missing count as not equal).
func countLevel(levels []byte, bitWidth int, n int64, want int) (int64, error) {
	var count int64
	for n > 0 && len(levels) > 0 {
		header, k := binary.Uvarint(levels)
		if k <= 0 {
			return 0, errLevels
		}
		levels = levels[k:]
		if header&1 == 0 { // a run of one value
			run := int64(min(header>>1, uint64(n)))
			size := (bitWidth + 7) / 8
			if len(levels) < size {
				return 0, errLevels
			}
			var v uint64
			for i := range size {
				v |= uint64(levels[i]) << (8 * i)
			}
			levels = levels[size:]
			if v == uint64(want) {
				count += run
			}
			n -= run
			continue
		}
		groups := header >> 1 // of 8 bit-packed values
		if groups > uint64(len(levels))/uint64(max(bitWidth, 1)) {
			groups = uint64(len(levels)) / uint64(max(bitWidth, 1))
		}
		consumed := min(int64(groups)*8, n)
		count += countPacked(levels[:int(groups)*bitWidth], bitWidth, consumed, want)
		n -= consumed
		levels = levels[int(groups)*bitWidth:]
	}
	return count, nil
}

// countPacked counts the values equal to want among the first m of packed,
// values of bitWidth bits packed from the least significant bit (one bit a
// value, the common case of one optional or repeated level, by population
// count).
func countPacked(packed []byte, bitWidth int, m int64, want int) int64 {
	if bitWidth == 1 && want <= 1 {
		var ones int64
		full := m / 8
		for _, b := range packed[:full] {
			ones += int64(bits.OnesCount8(b))
		}
		if r := m % 8; r > 0 {
			ones += int64(bits.OnesCount8(packed[full] & (1<<r - 1)))
		}
		if want == 1 {
			return ones
		}
		return m - ones
	}
	var count int64
	for i := range m {
		bit := i * int64(bitWidth)
		var v int
		for b := range int64(bitWidth) {
			if packed[(bit+b)/8]>>((bit+b)%8)&1 == 1 {
				v |= 1 << b
			}
		}
		if v == want {
			count++
		}
	}
	return count
}
