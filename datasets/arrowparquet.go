package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// Token tables (tokens/v1, packed/v1) are written uncompressed (Snappy took a
// third of the data path and saved little on token ids) and go through arrow-go's columnar Parquet
// writer and reader: several times faster than row-by-row reflection for
// list<int32> columns. Text tables use parquet-go. Tests read each library's
// files with the other.

var tokensSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
}, nil)

func parquetProps() *parquet.WriterProperties {
	return parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Uncompressed),
		parquet.WithDictionaryDefault(false), parquet.WithMaxRowGroupLength(65536))
}

// WriteTokensParquet writes a tokens/v1 shard atomically.
func WriteTokensParquet(path string, rows []TokensRow) error {
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, tokensSchema)
	defer b.Release()
	idb := b.Field(0).(*array.Int64Builder)
	lb := b.Field(1).(*array.ListBuilder)
	vb := lb.ValueBuilder().(*array.Int32Builder)
	for _, r := range rows {
		idb.Append(r.ID)
		lb.Append(true)
		vb.AppendValues(r.IDs, nil)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return atomicfile.Write(path, func(w io.Writer) error {
		fw, err := pqarrow.NewFileWriter(tokensSchema, w, parquetProps(), pqarrow.DefaultWriterProps())
		if err != nil {
			return err
		}
		if err := fw.Write(rec); err != nil {
			fw.Close()
			return err
		}
		return fw.Close()
	})
}

// ScanTokensParquet streams a tokens/v1 shard: fn gets each document's id and
// ids (a view valid during the call).
func ScanTokensParquet(path string, fn func(id int64, ids []int32) error) (err error) {
	defer recoverCorrupt(path, &err)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", path, err)
	}
	defer pr.Close()
	mem := memory.NewGoAllocator()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 8192}, mem)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	idIdx, idsIdx := schema.FieldIndices("id"), schema.FieldIndices("ids")
	if len(idIdx) != 1 || len(idsIdx) != 1 {
		return fmt.Errorf("%s: missing column %q or %q (has %v)", path, "id", "ids", schema)
	}
	rr, err := fr.GetRecordReader(context.Background(), []int{idIdx[0], idsIdx[0]}, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer rr.Release()
	for rr.Next() {
		rec := rr.RecordBatch()
		ids, ok1 := rec.Column(0).(*array.Int64)
		lists, ok2 := rec.Column(1).(*array.List)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s: columns id/ids have types %s/%s, want int64 and list<int32>", path, rec.Column(0).DataType(), rec.Column(1).DataType())
		}
		vals, ok := lists.ListValues().(*array.Int32)
		if !ok {
			return fmt.Errorf("%s: column ids holds %s, want int32", path, lists.ListValues().DataType())
		}
		raw := vals.Int32Values()
		offsets := lists.Offsets()
		for i := 0; i < int(rec.NumRows()); i++ {
			if err := fn(ids.Value(i), raw[offsets[i]:offsets[i+1]]); err != nil {
				return err
			}
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
