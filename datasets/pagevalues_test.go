package datasets

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// packLevels encodes levels in the RLE / bit-packed hybrid: a run of one
// value where rle is set and the values repeat eight times or more, bit-packed
// groups of eight elsewhere.
func packLevels(levels []int, bitWidth int, rle bool) []byte {
	var out []byte
	for i := 0; i < len(levels); {
		j := i
		for j < len(levels) && levels[j] == levels[i] {
			j++
		}
		if rle && j-i >= 8 {
			out = binary.AppendUvarint(out, uint64(j-i)<<1)
			for b := range (bitWidth + 7) / 8 {
				out = append(out, byte(levels[i]>>(8*b)))
			}
			i = j
			continue
		}
		group := make([]byte, bitWidth) // eight values
		for k := range 8 {
			if i+k < len(levels) {
				for b := range bitWidth {
					if levels[i+k]>>b&1 == 1 {
						bit := k*bitWidth + b
						group[bit/8] |= 1 << (bit % 8)
					}
				}
			}
		}
		out = binary.AppendUvarint(out, 1<<1|1)
		out = append(out, group...)
		i += 8
	}
	return out
}

// countLevel counts a level in hybrid-encoded levels as a plain count over
// the levels does, for one- and several-bit levels, runs and bit-packed
// groups, whole and cut.
func TestCountLevel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, bitWidth := range []int{1, 2, 3} {
		for _, rle := range []bool{false, true} {
			for trial := range 50 {
				n := r.IntN(200)
				levels := make([]int, n)
				for i := range levels {
					if trial%2 == 0 {
						levels[i] = r.IntN(1 << bitWidth)
					} else {
						levels[i] = (i / 13) % (1 << bitWidth) // runs
					}
				}
				packed := packLevels(levels, bitWidth, rle)
				for want := range 1 << bitWidth {
					var plain int64
					for _, l := range levels {
						if l == want {
							plain++
						}
					}
					got, err := countLevel(packed, bitWidth, int64(n), want)
					if err != nil || got != plain {
						t.Fatalf("width %d, rle %v, %d levels, level %d: %d, %v; want %d", bitWidth, rle, n, want, got, err, plain)
					}
				}
			}
		}
	}
	if _, err := countLevel([]byte{0x02}, 9, 1, 0); err == nil { // a run cut short
		t.Error("a run without its value: no error")
	}
}
