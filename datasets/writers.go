package datasets

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
)

// ShardWriter streams rows into numbered Parquet shards of at most perShard rows:
// dir/prefix-00000.parquet, dir/prefix-00001.parquet, ... (written inside an
// artifact's temporary directory, so publication stays atomic).
type ShardWriter[T any] struct {
	dir, prefix string
	perShard    int
	shard       int
	rows        int
	total       int64
	f           *os.File
	bw          *bufio.Writer
	w           *parquet.GenericWriter[T]
}

// NewShardWriter starts writing shards.
func NewShardWriter[T any](dir, prefix string, perShard int) *ShardWriter[T] {
	if perShard <= 0 {
		perShard = 100_000
	}
	return &ShardWriter[T]{dir: dir, prefix: prefix, perShard: perShard}
}

// Write appends rows.
func (s *ShardWriter[T]) Write(rows ...T) error {
	for len(rows) > 0 {
		if s.w == nil {
			if err := s.open(); err != nil {
				return err
			}
		}
		n := min(len(rows), s.perShard-s.rows)
		if _, err := s.w.Write(rows[:n]); err != nil {
			return fmt.Errorf("write %s: %w", s.f.Name(), err)
		}
		s.rows += n
		s.total += int64(n)
		rows = rows[n:]
		if s.rows == s.perShard {
			if err := s.closeShard(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *ShardWriter[T]) open() error {
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%05d.parquet", s.prefix, s.shard))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	s.f, s.bw = f, bufio.NewWriterSize(f, 1<<20)
	s.w = parquet.NewGenericWriter[T](s.bw, parquet.Compression(&snappy.Codec{}), parquet.MaxRowsPerRowGroup(8192))
	s.rows = 0
	return nil
}

func (s *ShardWriter[T]) closeShard() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	if err == nil {
		err = s.bw.Flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.w = nil
	s.shard++
	if err != nil {
		return fmt.Errorf("write %s shard %d: %w", s.prefix, s.shard-1, err)
	}
	return nil
}

// Close finishes the last shard; a writer that got no rows still writes one
// empty shard so readers find the split.
func (s *ShardWriter[T]) Close() error {
	if s.total == 0 && s.w == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	return s.closeShard()
}

// Rows is the number of rows written.
func (s *ShardWriter[T]) Rows() int64 { return s.total }

// PackedWriter streams blocks of length L to dir/split-00000.parquet and
// dir/split.arrow, one Arrow record batch feeding both.
type PackedWriter struct {
	L       int
	pf      *os.File
	pbw     *bufio.Writer
	pw      *pqarrow.FileWriter
	af      *os.File
	abw     *bufio.Writer
	aw      *ipc.FileWriter
	pending []PackedRow
	Rows    int64
}

// NewPackedWriter creates the split's Parquet and Arrow files in dir.
func NewPackedWriter(dir, split string, L int) (*PackedWriter, error) {
	af, err := os.Create(filepath.Join(dir, split+".arrow"))
	if err != nil {
		return nil, err
	}
	abw := bufio.NewWriterSize(af, 1<<20)
	aw, err := ipc.NewFileWriter(abw, ipc.WithSchema(packedSchema(L)), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		af.Close()
		return nil, err
	}
	pf, err := os.Create(filepath.Join(dir, split+"-00000.parquet"))
	if err != nil {
		af.Close()
		return nil, err
	}
	pbw := bufio.NewWriterSize(pf, 1<<20)
	pw, err := pqarrow.NewFileWriter(packedSchema(L), pbw, parquetProps(), pqarrow.DefaultWriterProps())
	if err != nil {
		af.Close()
		pf.Close()
		return nil, err
	}
	return &PackedWriter{L: L, pf: pf, pbw: pbw, pw: pw, af: af, abw: abw, aw: aw}, nil
}

// Write adds one block.
func (p *PackedWriter) Write(r PackedRow) error {
	p.pending = append(p.pending, r)
	p.Rows++
	if len(p.pending) == 4096 {
		return p.flush()
	}
	return nil
}

func (p *PackedWriter) flush() error {
	if len(p.pending) == 0 {
		return nil
	}
	mem := memory.NewGoAllocator()
	b := array.NewRecordBuilder(mem, packedSchema(p.L))
	defer b.Release()
	ids := b.Field(0).(*array.FixedSizeListBuilder)
	mask := b.Field(1).(*array.FixedSizeListBuilder)
	idv := ids.ValueBuilder().(*array.Int32Builder)
	mv := mask.ValueBuilder().(*array.Int8Builder)
	for _, r := range p.pending {
		ids.Append(true)
		idv.AppendValues(r.InputIDs, nil)
		mask.Append(true)
		mv.AppendValues(r.AttentionMask, nil)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	p.pending = p.pending[:0]
	if err := p.pw.WriteBuffered(rec); err != nil {
		return err
	}
	return p.aw.Write(rec)
}

// Close flushes both files.
func (p *PackedWriter) Close() error {
	err := p.flush()
	if cerr := p.pw.Close(); err == nil {
		err = cerr
	}
	if ferr := p.pbw.Flush(); err == nil {
		err = ferr
	}
	if serr := p.pf.Sync(); err == nil {
		err = serr
	}
	if cerr := p.pf.Close(); err == nil {
		err = cerr
	}
	if cerr := p.aw.Close(); err == nil {
		err = cerr
	}
	if ferr := p.abw.Flush(); err == nil {
		err = ferr
	}
	if serr := p.af.Sync(); err == nil {
		err = serr
	}
	if cerr := p.af.Close(); err == nil {
		err = cerr
	}
	return err
}
