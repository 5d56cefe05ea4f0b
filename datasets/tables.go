// Package datasets holds the data side of mdlm: the dataset registry (the
// reference's dataloader.py: get_dataset) and the typed table artifacts the data
// stages pass along:
//
//	text/v1     Parquet shards, columns id (int64, stable document id) and text
//	tokens/v1   Parquet shards, columns id and ids (list<int32>, no special tokens)
//	packed/v1   fixed-length blocks: input_ids and attention_mask, as Parquet
//	            (for any reader) and as an Arrow IPC file (memory-mapped by training)
//
// Readers check the schema and name the file and column at fault.
package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// TextRow is one document of a text/v1 artifact.
type TextRow struct {
	ID   int64  `parquet:"id"`
	Text string `parquet:"text"`
}

// TokensRow is one tokenized document of a tokens/v1 artifact.
type TokensRow struct {
	ID  int64   `parquet:"id"`
	IDs []int32 `parquet:"ids,list"`
}

// PackedRow is one block of a packed/v1 artifact.
type PackedRow struct {
	InputIDs      []int32 `parquet:"input_ids,list"`
	AttentionMask []int8  `parquet:"attention_mask,list"`
}

// WriteParquet writes rows to path atomically (Snappy-compressed, row groups of
// rowGroup rows).
func WriteParquet[T any](path string, rows []T, rowGroup int64) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		pw := parquet.NewGenericWriter[T](w, parquet.Compression(&snappy.Codec{}), parquet.MaxRowsPerRowGroup(rowGroup))
		if _, err := pw.Write(rows); err != nil {
			return err
		}
		return pw.Close()
	})
}

// ScanParquet reads path in batches, checking that every column named in
// required exists. A corrupt or truncated file is an error naming it.
func ScanParquet[T any](path string, required []string, fn func([]T) error) error {
	f, size, err := openSized(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return ScanParquetAt(f, size, path, required, fn)
}

// ScanParquetAt is ScanParquet over size bytes of r (a local file, or one
// streamed from an object store), naming the file name in errors.
func ScanParquetAt[T any](r io.ReaderAt, size int64, name string, required []string, fn func([]T) error) (err error) {
	defer recoverCorrupt(name, &err)
	pf, err := openParquetAt(r, size, name)
	if err != nil {
		return err
	}
	if err := requireColumns(pf, name, required); err != nil {
		return err
	}
	return scanRows(pf, name, fn)
}

// requireColumns checks that pf has the top-level columns named in required.
func requireColumns(pf *parquet.File, name string, required []string) error {
	have := columnNames(pf.Schema())
	for _, col := range required {
		if !slices.Contains(have, col) {
			return fmt.Errorf("%s: missing column %q (has %v)", name, col, have)
		}
	}
	return nil
}

// scanRows reads pf's rows into T in batches of up to 1024, a row group at a
// time. Each row group must give the rows its metadata states, no more and no
// fewer: on a damaged file parquet-go's reader can make up rows (a column
// holding more values than its group's rows gives rows of zeros; FuzzScanText's
// regression input 7fe8d430538b9898 read 16 rows from a group of 2).
func scanRows[T any](pf *parquet.File, name string, fn func([]T) error) error {
	buf := make([]T, 1024)
	for g, rg := range pf.RowGroups() {
		if err := scanGroupRows(rg, buf, fmt.Sprintf("%s: row group %d", name, g), fn); err != nil {
			return err
		}
	}
	return nil
}

// scanGroupRows reads one row group's rows through buf; its own errors start
// with where, the caller's come back as they are.
func scanGroupRows[T any](rg parquet.RowGroup, buf []T, where string, fn func([]T) error) error {
	want := rg.NumRows()
	pr := parquet.NewGenericRowGroupReader[T](rg)
	defer pr.Close()
	var got int64
	for {
		n, rerr := pr.Read(buf)
		if got += int64(n); got > want {
			return fmt.Errorf("%s: more rows than the %d its metadata states", where, want)
		}
		if n > 0 {
			if err := fn(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			if got != want {
				return fmt.Errorf("%s: %d rows where its metadata states %d", where, got, want)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("%s: %w", where, rerr)
		}
	}
}

// openSized opens a local file and returns its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// openParquet opens a Parquet file with parquet-go, naming the file in errors.
func openParquet(path string) (*parquet.File, func() error, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, nil, err
	}
	pf, err := openParquetAt(f, size, path)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return pf, f.Close, nil
}

// openParquetAt opens size bytes of r with parquet-go once the footer's
// length, read from the file's last 8 bytes, fits the file (parquet-go
// allocates a buffer of that length, up to 4 GiB, before it reads the footer,
// so a damaged or hostile length would cost that much memory first) and the
// footer's lists claim no more than its bytes hold (checkFooter), and reads
// it through a pageGuard.
func openParquetAt(r io.ReaderAt, size int64, name string) (*parquet.File, error) {
	const magic = 4
	var tail [4 + magic]byte
	if size < 2*magic+4 {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %d bytes", name, size)
	}
	if _, err := r.ReadAt(tail[:], size-int64(len(tail))); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-2*magic-4 {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): a %d-byte footer claimed in a %d-byte file", name, n, size)
	}
	footer := make([]byte, n)
	if _, err := r.ReadAt(footer, size-int64(len(tail))-n); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	if err := checkFooter(footer); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	// Every reader here scans in order: the page index (for seeking) and the
	// bloom filters are not read, so their damage cannot matter. Pages are
	// read through a pageGuard, which serves parquet-go the footer read here.
	g := &pageGuard{r: r}
	g.hold(size-int64(len(tail))-n, footer)
	pf, err := parquet.OpenFile(g, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	if err := g.guard(pf.Metadata(), size, leafShapes(pf)); err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", name, err)
	}
	return pf, nil
}

// recoverCorrupt turns a panic of the Parquet readers (they panic on some
// malformed pages) into an error naming the file.
func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: corrupt Parquet data: %v", path, r)
	}
}

func columnNames(s *parquet.Schema) []string {
	var names []string
	for _, f := range s.Fields() {
		names = append(names, f.Name())
	}
	return names
}

// ShardName is the file name of shard i of n.
func ShardName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.parquet", prefix, i, n)
}

// Shards lists the Parquet files of an artifact directory with the given prefix,
// in name order.
func Shards(dir, prefix string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, prefix+"-*.parquet"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no %s-*.parquet shards", dir, prefix)
	}
	return files, nil
}
