package datasets

import (
	"fmt"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/mdlm-go/mdlm/internal/filehash"
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
	f           *filehash.Writer
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
	f, err := filehash.Create(path)
	if err != nil {
		return err
	}
	s.f = f
	s.w = parquet.NewGenericWriter[T](f, parquet.Compression(&snappy.Codec{}), parquet.MaxRowsPerRowGroup(8192))
	s.rows = 0
	return nil
}

func (s *ShardWriter[T]) closeShard() error {
	if s.w == nil {
		return nil
	}
	err := s.w.Close()
	if cerr := s.f.Close(); err == nil { // flush, fsync, close; hashed on the way
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
// dir/split.arrow, one Arrow record batch (about 256K tokens, one Parquet row
// group) feeding both. Blocks are copied into flat column buffers that become
// the record's arrays without builders; a background goroutine encodes each
// full group into both files while the caller fills the next one, and both
// files are hashed as they are written (filehash), so publishing them does not
// read them again.
type PackedWriter struct {
	L      int
	pf, af *filehash.Writer
	pw     *levelWriter
	aw     *ipc.FileWriter
	schema *arrow.Schema
	perRG  int // blocks per record batch / row group
	cur    *packedGroup
	free   chan *packedGroup
	full   chan *packedGroup
	done   chan error
	Rows   int64

	def, rep []int16 // levels of a full group (encoder goroutine)
	mask32   []int32
	closeErr error
}

type packedGroup struct {
	ids  []int32
	mask []int8
	n    int
}

// packedGroupTokens is the number of tokens per record batch and row group.
const packedGroupTokens = 1 << 18

// NewPackedWriter creates the split's Parquet and Arrow files in dir.
func NewPackedWriter(dir, split string, L int) (*PackedWriter, error) {
	schema := packedSchema(L)
	af, err := filehash.Create(filepath.Join(dir, split+".arrow"))
	if err != nil {
		return nil, err
	}
	aw, err := ipc.NewFileWriter(af, ipc.WithSchema(schema), ipc.WithAllocator(memory.NewGoAllocator()))
	if err != nil {
		af.Abort()
		return nil, err
	}
	pf, err := filehash.Create(filepath.Join(dir, split+"-00000.parquet"))
	if err != nil {
		af.Abort()
		return nil, err
	}
	pw, err := newLevelWriter(pf, pf.Name(), schema)
	if err != nil {
		af.Abort()
		pf.Abort()
		return nil, err
	}
	p := &PackedWriter{L: L, pf: pf, pw: pw, af: af, aw: aw, schema: schema, perRG: max(1, packedGroupTokens/L),
		free: make(chan *packedGroup, 2), full: make(chan *packedGroup, 1), done: make(chan error, 1)}
	p.free <- &packedGroup{}
	p.free <- &packedGroup{}
	go p.encode(p.full)
	return p, nil
}

// Write adds one block; both slices must hold L entries.
func (p *PackedWriter) Write(r PackedRow) error {
	if len(r.InputIDs) != p.L || len(r.AttentionMask) != p.L {
		return fmt.Errorf("packed block %d: %d ids and %d mask entries, want %d each", p.Rows, len(r.InputIDs), len(r.AttentionMask), p.L)
	}
	if p.cur == nil {
		p.cur = <-p.free
		if p.cur == nil { // the encoder failed and stopped
			return p.Close()
		}
		if p.cur.ids == nil {
			p.cur.ids, p.cur.mask = make([]int32, 0, p.perRG*p.L), make([]int8, 0, p.perRG*p.L)
		}
	}
	g := p.cur
	g.ids = append(g.ids, r.InputIDs...)
	g.mask = append(g.mask, r.AttentionMask...)
	g.n++
	p.Rows++
	if g.n == p.perRG {
		p.full <- g
		p.cur = nil
	}
	return nil
}

// encode writes each full group to both files; after an error it drains the
// queue, hands back no more buffers, and reports the error from Close.
func (p *PackedWriter) encode(full <-chan *packedGroup) {
	var err error
	for g := range full {
		if err == nil {
			err = p.writeGroup(g)
		}
		g.ids, g.mask, g.n = g.ids[:0], g.mask[:0], 0
		if err != nil {
			close(p.free) // Write sees nil and returns the error via Close
			for range full {
			}
			break
		}
		p.free <- g
	}
	p.done <- err
}

// fixedList wraps a flat values buffer as n fixed-size lists of the field's type.
func fixedList(f arrow.Field, n int, values arrow.ArrayData) arrow.Array {
	d := array.NewData(f.Type, n, []*memory.Buffer{nil}, []arrow.ArrayData{values}, 0, 0)
	defer d.Release()
	return array.NewFixedSizeListData(d)
}

func (p *PackedWriter) writeGroup(g *packedGroup) error {
	idv := array.NewData(arrow.PrimitiveTypes.Int32, g.n*p.L,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(g.ids))}, nil, 0, 0)
	mv := array.NewData(arrow.PrimitiveTypes.Int8, g.n*p.L,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int8Traits.CastToBytes(g.mask))}, nil, 0, 0)
	cols := []arrow.Array{fixedList(p.schema.Field(0), g.n, idv), fixedList(p.schema.Field(1), g.n, mv)}
	idv.Release()
	mv.Release()
	rec := array.NewRecordBatch(p.schema, cols, int64(g.n))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	if err := p.writeParquet(g); err != nil {
		return err
	}
	if err := p.aw.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", p.af.Name(), err)
	}
	return nil
}

// writeParquet writes g as a row group; every block has the same levels (rep 0
// then L−1 ones, def 1), built once, and the int8 mask widens to Parquet's INT32.
func (p *PackedWriter) writeParquet(g *packedGroup) error {
	m := g.n * p.L
	if len(p.rep) < m {
		p.def, p.rep = make([]int16, m), make([]int16, m)
		for i := range p.rep {
			p.def[i] = 1
			if i%p.L != 0 {
				p.rep[i] = 1
			}
		}
		p.mask32 = make([]int32, m)
	}
	mask := p.mask32[:m]
	for i, v := range g.mask {
		mask[i] = int32(v)
	}
	return p.pw.writeRowGroup(column{i32: g.ids, def: p.def[:m], rep: p.rep[:m]},
		column{i32: mask, def: p.def[:m], rep: p.rep[:m]})
}

// Close writes the last group and finishes both files (each fsynced). It may
// be called again and returns the first result.
func (p *PackedWriter) Close() error {
	if p.full == nil {
		return p.closeErr
	}
	if p.cur != nil && p.cur.n > 0 {
		p.full <- p.cur
	}
	p.cur = nil
	close(p.full)
	p.full = nil
	err := <-p.done
	// Finish both files at once: each Close waits for its hashing and fsync.
	perr := make(chan error, 1)
	go func() {
		e := p.pw.Close()
		if ce := p.pf.Close(); e == nil {
			e = ce
		}
		perr <- e
	}()
	if cerr := p.aw.Close(); err == nil {
		err = cerr
	}
	if cerr := p.af.Close(); err == nil {
		err = cerr
	}
	if e := <-perr; err == nil {
		err = e
	}
	p.closeErr = err
	return err
}
