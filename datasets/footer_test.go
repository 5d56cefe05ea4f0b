package datasets

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// Footers whose thrift encoding claims more than its bytes hold are refused
// before a decoder allocates the claim; real footers pass.
func TestCheckFooter(t *testing.T) {
	for name, data := range map[string][]byte{
		"text":       writeRows(t, textDocs(50, 3), 7),
		"dictionary": writeRows(t, largeDictRows(150), 40),
		"nullable":   writePaged(t, []textRowNullText{{ID: 1}, {2, new("ab")}}, 1, 256),
	} {
		if err := checkFooter(footerOf(data)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	tests := []struct {
		name   string
		footer []byte
		want   string
	}{
		// field 2 (schema), a list of structs claiming 2^24-1 elements
		{"list", []byte{0x29, 0xfc, 0xff, 0xff, 0xff, 0x07, 0x00}, "16777215 elements claimed with 1 bytes left"},
		{"string", []byte{0x68, 0xff, 0xff, 0x03}, "a string of 65535 bytes"},
		{"map", []byte{0x1b, 0x80, 0x01, 0x88}, "128 elements claimed with 0 bytes left"},
		{"depth", []byte(strings.Repeat("\x1c", 100)), "nested too deep"},
		{"cut short", []byte{0x15}, "a bad varint"},
		{"type", []byte{0x1e}, "a value of type 14"},
	}
	for _, tc := range tests {
		err := checkFooter(tc.footer)
		if err == nil || !errors.Is(err, errFooter) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A 786-byte file whose footer claims a list of about 46 million row groups
// (parquet-go allocated 25 GB for it) is refused cheaply.
func TestFooterListClaimRefused(t *testing.T) {
	data := fuzzInput(t, "FuzzReadDocsParquet", "fb726674182425e8")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := scanTextsAll(data)
	runtime.ReadMemStats(&after)
	if err == nil || !errors.Is(err, errFooter) {
		t.Errorf("err = %v, want the footer refused", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes", n)
	}
}

// footerOf is the footer of the Parquet file data.
func footerOf(data []byte) []byte {
	n := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	return data[len(data)-8-n : len(data)-8]
}

// footerCharge is what the footer walk charges to its budget for footer, per
// byte of it.
func footerCharge(footer []byte) (float64, error) {
	w := footerWalk{b: footer, budget: 1 << 62}
	if err := w.structure(0); err != nil {
		return 0, err
	}
	return float64(1<<62-w.budget) / float64(len(footer)), nil
}
