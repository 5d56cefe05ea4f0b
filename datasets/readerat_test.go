package datasets

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// countingReaderAt records the reads a scan makes.
type countingReaderAt struct {
	r     io.ReaderAt
	reads int
	bytes int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	c.bytes += int64(len(p))
	return c.r.ReadAt(p, off)
}

func TestScanParquetAtMatchesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000-of-00001.parquet")
	rows := []TextRow{{1, "a"}, {2, "bb"}, {7, strings.Repeat("x", 5000)}}
	if err := WriteParquet(path, rows, 2); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fromPath, fromAt []TextRow
	if err := ScanParquet(path, []string{"id", "text"}, func(b []TextRow) error { fromPath = append(fromPath, b...); return nil }); err != nil {
		t.Fatal(err)
	}
	cr := &countingReaderAt{r: bytes.NewReader(raw)}
	err = ScanParquetAt(cr, int64(len(raw)), "s3://b/k.parquet", []string{"id", "text"}, func(b []TextRow) error {
		fromAt = append(fromAt, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromPath, rows) || !reflect.DeepEqual(fromAt, rows) {
		t.Fatalf("path %v, ReaderAt %v, want %v", fromPath, fromAt, rows)
	}
	if cr.reads == 0 {
		t.Fatal("ScanParquetAt read nothing through the ReaderAt")
	}
}

func TestScanAtErrorsNameTheSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.parquet")
	if err := WriteParquet(path, []TextRow{{1, "a"}}, 10); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	const name = "s3://bucket/pre/x.parquet"
	tests := []struct {
		name string
		scan func() error
		want string
	}{
		{"truncated text", func() error {
			return ScanParquetAt(bytes.NewReader(raw), int64(len(raw))-9, name, nil, func([]TextRow) error { return nil })
		}, name},
		{"missing column", func() error {
			return ScanParquetAt(bytes.NewReader(raw), int64(len(raw)), name, []string{"ids"}, func([]TextRow) error { return nil })
		}, `missing column "ids"`},
		{"truncated tokens", func() error {
			return ScanTokensTablesAt(bytes.NewReader(raw), 20, name, func(TokensTable) error { return nil })
		}, name},
		{"text as tokens", func() error {
			return ScanTokensTablesAt(bytes.NewReader(raw), int64(len(raw)), name, func(TokensTable) error { return nil })
		}, name},
	}
	for _, tt := range tests {
		err := tt.scan()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming %s and %q", tt.name, err, name, tt.want)
		}
	}
}

func TestScanTokensTablesAtMatchesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000-of-00001.parquet")
	groups := []TokensTable{
		{IDs: []int64{1, 2, 3}, Offsets: []int64{0, 2, 2, 5}, Flat: []int32{10, 11, 12, 13, 14}},
		{IDs: []int64{9}, Offsets: []int64{0, 1}, Flat: []int32{99}},
	}
	writeTokenGroups(t, path, groups)
	raw, _ := os.ReadFile(path)
	var fromPath, fromAt []TokensTable
	if err := ScanTokensTables(path, func(t TokensTable) error { fromPath = append(fromPath, t); return nil }); err != nil {
		t.Fatal(err)
	}
	cr := &countingReaderAt{r: bytes.NewReader(raw)}
	if err := ScanTokensTablesAt(cr, int64(len(raw)), "s3://b/k", func(t TokensTable) error { fromAt = append(fromAt, t); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromPath, fromAt) || len(fromAt) != 2 || !reflect.DeepEqual(fromAt[0].Flat, groups[0].Flat) {
		t.Fatalf("path %+v, ReaderAt %+v", fromPath, fromAt)
	}
	if cr.bytes > 2*int64(len(raw)) {
		t.Errorf("read %d bytes of a %d-byte file", cr.bytes, len(raw))
	}
}
