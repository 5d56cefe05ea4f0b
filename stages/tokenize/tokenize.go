// Package tokenize is the `mdlm tokenize` stage: text/v1 -> tokens/v1. Each input
// shard becomes one output shard "<split>-NNNNN.parquet" (columns id, ids), the
// text first passed through the dataset's detokenizer (`dataloader.py: get_dataset`, its detokenizers) and encoded
// without special tokens on every core. The shards of one process share the
// workers: a reader goes on to the next shard while the last chunks of the
// previous one are encoded, and beyond four workers several shards are read
// at once.
//
// Sharding (stage.Sharder): with --num-shards N, process --shard-index i takes
// the input shards whose position is i mod N and writes each finished shard
// atomically into the partial directory the executor gives it, skipping shards
// already there (a rerun resumes); the executor publishes when all are done.
package tokenize

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/detokenize"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Def declares the stage.
var Def = stage.Def{Kind: "tokenize", Version: 1, Output: artifact.TokensType,
	Help:   "Tokenize a text/v1 artifact into tokens/v1 (sharded, all cores).",
	Inputs: []stage.Input{{Name: "text", Type: artifact.TextType}, {Name: "tokenizer", Type: artifact.TokenizerType, Optional: true}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	In          string `arg:"" input:"text" stream:"" help:"text/v1 artifact." type:"existingdir"`
	Out         string `short:"o" required:"" output:"" help:"tokens/v1 artifact directory to create." type:"path"`
	Tokenizer   string `help:"gpt2, bert-base-uncased, text8, bytes or a tokenizer.json (default: the dataset's)." digest:"name-or-file"`
	Learned     string `name:"tokenizer-artifact" input:"tokenizer" help:"tokenizer/v1 artifact (train-tokenizer) whose tokenizer.json to use; excludes --tokenizer." type:"existingdir" digest:"file"`
	Detokenizer string `help:"Dataset whose detokenizer to apply first (default: the dataset's; 'none' for none)."`
	Workers     int    `help:"Encoding goroutines (default: all cores)." cosmetic:""`
	stage.Sharding
}

// setup opens the input and resolves the tokenizer and detokenizer.
type setup struct {
	in        artifact.Manifest
	learned   string // the tokenizer/v1 artifact's digest, if one was given
	tokName   string
	tok       tokenizer.Tokenizer
	detokName string
	detok     detokenize.Func
	shards    []string
}

func (o *Options) setup() (*setup, error) {
	in, meta, err := stage.OpenArtifact[artifact.TextMeta](o.In)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	s := &setup{in: in, tokName: o.Tokenizer, detokName: o.Detokenizer}
	if o.Learned != "" {
		if err := s.useLearned(o.Learned); err != nil {
			return nil, err
		}
	}
	if s.tokName == "" {
		if s.tokName, err = artifact.ResolveTokenizer(o.In, meta.Tokenizer); err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
	}
	if s.tokName == "" {
		s.tokName = "gpt2"
	}
	if s.tok, err = tokenizer.Load(s.tokName); err != nil {
		return nil, fmt.Errorf("tokenize: --tokenizer: %w", err)
	}
	if s.detokName == "" {
		s.detokName = meta.Detokenizer
	}
	s.detok = detokenize.For(s.detokName)
	if s.shards, err = stage.InputShards(o.In, "*"); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return s, nil
}

// WriteShard tokenizes the input shards whose position is index mod count,
// each into partial/<same name>, skipping those already there.
func (o *Options) WriteShard(ctx context.Context, env *stage.Env, partial string, index, count int) error {
	s, err := o.setup()
	if err != nil {
		return err
	}
	log := env.Logger()
	var jobs []shardJob
	for i, shard := range s.shards {
		if i%count != index {
			continue
		}
		dst := filepath.Join(partial, filepath.Base(shard))
		if _, err := os.Stat(dst); err == nil {
			log.Info("shard already tokenized, skipping", "shard", filepath.Base(shard))
			continue
		}
		jobs = append(jobs, shardJob{src: shard, dst: dst})
	}
	return tokenizeShards(ctx, jobs, s.tok, s.detok, o.Workers, func(j shardJob) {
		log.Info("tokenized shard", "shard", filepath.Base(j.src))
	})
}

// Assemble moves every tokenized shard into the artifact.
func (o *Options) Assemble(ctx context.Context, env *stage.Env, partial, dir string) (artifact.Manifest, error) {
	s, err := o.setup()
	if err != nil {
		return artifact.Manifest{}, err
	}
	names := make([]string, len(s.shards))
	for i, shard := range s.shards {
		names[i] = filepath.Base(shard)
	}
	if err := stage.MoveFiles(partial, dir, names); err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	textMeta, _ := artifact.DecodeMeta[artifact.TextMeta](s.in)
	tokName, err := artifact.EmbedTokenizer(dir, s.tokName) // a file travels with the tokens
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	meta := artifact.TokensMeta{Tokenizer: tokName, Detokenizer: s.detokName, Dataset: textMeta.Dataset,
		Wrap: textMeta.Wrap, VocabSize: s.tok.VocabSize()}
	inputs := map[string]string{"text": s.in.Digest()}
	if s.learned != "" {
		inputs["tokenizer"] = s.learned
	}
	return artifact.Manifest{Inputs: inputs, Params: artifact.Params(meta)}, nil
}

// learnedFile is the tokenizer file of a tokenizer/v1 artifact (stages/traintok).
const learnedFile = "tokenizer.json"

// useLearned takes the tokenizer.json of a tokenizer/v1 artifact. The tokens
// carry a copy of it (artifact.EmbedTokenizer), which pack, train and sample
// pass on and load.
func (s *setup) useLearned(dir string) error {
	if s.tokName != "" {
		return fmt.Errorf("tokenize: --tokenizer %q and --tokenizer-artifact %s: give one", s.tokName, dir)
	}
	man, _, err := artifact.Open[artifact.TokenizerMeta](dir)
	if err != nil {
		return fmt.Errorf("tokenize: --tokenizer-artifact: %w", err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, learnedFile))
	if err != nil {
		return fmt.Errorf("tokenize: --tokenizer-artifact %s: %w", dir, err)
	}
	s.tokName, s.learned = abs, man.Digest()
	return nil
}

// chunkBytes is the text per work unit (and per output row group): large
// enough to amortise a row group, small enough that encoding, reading and
// writing overlap even on a shard of a few MB.
var chunkBytes = 1 << 20 // a variable for tests

// workersPerReader is how many encoding workers one reader keeps busy. A
// reader decodes a text shard at about 220 MB/s on one core and GPT-2's
// encoder runs at 45-60 MB/s (bench/README, "The tokenize stage's reader and
// writer"), so beyond about four workers a process reads several shards at
// once.
const workersPerReader = 4

// shardJob is one input shard and the file its tokens go to.
type shardJob struct{ src, dst string }

// chunk is a run of consecutive documents of a shard.
type chunk struct {
	run   *shardRun
	seq   int
	ids   []int64
	texts []string
	out   datasets.TokensTable
}

// shardRun is a shard being read and written: its encoded chunks arrive on
// done in any order, and its reader's outcome on read, once.
type shardRun struct {
	job  shardJob
	done chan *chunk
	read chan readResult
}

// readResult is how a shard's reading ended: n chunks, or an error.
type readResult struct {
	n   int
	err error
}

// pool is what every shard of one process shares: the queue of chunks to
// encode, the slots that bound the chunks read but not yet written, and the
// token buffers of written chunks, for the workers to fill again (fresh
// memory costs a page fault per 4 KB on first touch).
type pool struct {
	todo  chan *chunk
	slots chan struct{}
	free  chan datasets.TokensTable
}

// tokenizeShards tokenizes each job's shard into its destination, written
// atomically. Readers (one per workersPerReader workers, at most one per
// shard) cut shards into chunks of about chunkBytes of text, one shard after
// another; the workers encode chunks of any shard (sharing one pre-token
// cache); each shard's writer appends its chunks in order as row groups and
// publishes once the shard's reading verified. A reader goes on to its next
// shard while the last chunks of the previous one are still being encoded,
// so no worker waits at a shard's end. At most 2×workers chunks are in
// memory (and the token storage of as many written ones, for reuse).
// finished is called for each shard published. The first error
// stops every shard; shards published before it stay.
func tokenizeShards(ctx context.Context, jobs []shardJob, tok tokenizer.Tokenizer, detok detokenize.Func, workers int, finished func(shardJob)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	g, gctx := errgroup.WithContext(ctx)
	p := &pool{todo: make(chan *chunk, workers), slots: make(chan struct{}, 2*workers), free: make(chan datasets.TokensTable, 2*workers)}
	queue := make(chan shardJob, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	var readers sync.WaitGroup
	for range min(len(jobs), (workers+workersPerReader-1)/workersPerReader) {
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			for j := range queue {
				if gctx.Err() != nil {
					return nil // the error that stopped us is reported where it arose
				}
				p.readShard(gctx, g, j, finished)
			}
			return nil
		})
	}
	go func() { readers.Wait(); close(p.todo) }()
	for _, enc := range tokenizer.Workers(tok, workers) {
		g.Go(func() error {
			p.encodeChunks(gctx, enc, detok)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// readShard reads one shard into chunks on the pool's queue, its writer
// running beside it in g.
func (p *pool) readShard(ctx context.Context, g *errgroup.Group, j shardJob, finished func(shardJob)) {
	run := &shardRun{job: j, done: make(chan *chunk, cap(p.slots)), read: make(chan readResult, 1)}
	g.Go(func() error {
		if err := p.writeShard(ctx, run); err != nil {
			return fmt.Errorf("tokenize %s: %w", j.src, err)
		}
		finished(j)
		return nil
	})
	n, err := readChunks(ctx, run, p.slots, p.todo)
	run.read <- readResult{n, err}
}

// readChunks scans the text shard (local or streamed: stage.OpenInputFile)
// into chunks, each taking a slot, and returns how many. It verifies the
// shard before it returns, and its writer publishes only after that.
func readChunks(ctx context.Context, run *shardRun, slots chan struct{}, todo chan<- *chunk) (int, error) {
	n := 0
	err := stage.ScanInput(run.job.src, func(in stage.InputFile) (err error) {
		n, err = scanChunks(ctx, in, run, slots, todo)
		return err
	})
	return n, err
}

func scanChunks(ctx context.Context, in stage.InputFile, run *shardRun, slots chan struct{}, todo chan<- *chunk) (int, error) {
	c, size, seq := &chunk{run: run}, 0, 0
	send := func() error {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		select {
		case todo <- c:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		seq++
		c, size = &chunk{run: run, seq: seq}, 0
		return nil
	}
	err := datasets.ScanTextAt(in, in.Size(), in.Name(), func(b datasets.TextBatch) error {
		for i, text := range b.Texts { // the batch's own: no copy needed
			c.ids = append(c.ids, b.IDs[i])
			c.texts = append(c.texts, text)
			size += len(text)
			if size >= chunkBytes {
				if err := send(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && (len(c.ids) > 0 || seq == 0) { // an empty shard still gets its (empty) file
		err = send()
	}
	return seq, err
}

// encodeChunks fills the token table of each chunk on the queue and hands it
// to its shard's writer. After an error it only drains the queue.
func (p *pool) encodeChunks(ctx context.Context, tok tokenizer.Tokenizer, detok detokenize.Func) {
	var scratch []int
	for c := range p.todo {
		if ctx.Err() != nil {
			continue
		}
		var reuse datasets.TokensTable
		select {
		case reuse = <-p.free:
		default:
		}
		c.out, scratch = encodeTexts(tok, detok, reuse, c.ids, c.texts, scratch)
		c.texts = nil
		select {
		case c.run.done <- c:
		case <-ctx.Done():
		}
	}
}

// encodeTexts encodes texts (after detok, when given) into one table, in
// reuse's Offsets and Flat storage.
func encodeTexts(tok tokenizer.Tokenizer, detok detokenize.Func, reuse datasets.TokensTable, ids []int64, texts []string, scratch []int) (datasets.TokensTable, []int) {
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	t := datasets.TokensTable{IDs: ids,
		Offsets: append(slices.Grow(reuse.Offsets[:0], len(ids)+1), 0),
		Flat:    slices.Grow(reuse.Flat[:0], n/3+16)}
	for _, s := range texts {
		if detok != nil {
			s = detok(s)
		}
		t.Flat, scratch = tokenizer.Encode32(tok, t.Flat, scratch, s)
		t.Offsets = append(t.Offsets, int64(len(t.Flat)))
	}
	return t, scratch
}

// recycle offers a written table's storage to the workers, unless a huge
// document made it larger than a chunk's usual size (at most chunkBytes ids:
// a chunk of text has fewer tokens than bytes), which would stay allocated.
// The writer keeps nothing of a table it wrote.
func (p *pool) recycle(t datasets.TokensTable) {
	if cap(t.Flat) > chunkBytes || cap(t.Offsets) > chunkBytes/8 {
		return
	}
	select {
	case p.free <- t:
	default:
	}
}

// writeShard writes a shard's chunks in order as they arrive, freeing their
// slots, and publishes the file once its reader has verified the input. A
// reader's error comes back as itself.
func (p *pool) writeShard(ctx context.Context, run *shardRun) error {
	var readErr error
	err := atomicfile.Write(run.job.dst, func(w io.Writer) error {
		tw, err := datasets.NewTokensWriter(w, run.job.dst)
		if err != nil {
			return err
		}
		waiting := map[int]*chunk{}
		next, total, read := 0, -1, run.read
		for total < 0 || next < total {
			select {
			case c := <-run.done:
				waiting[c.seq] = c
				for w, ok := waiting[next]; ok; w, ok = waiting[next] {
					delete(waiting, next)
					if err := tw.WriteTable(w.out); err != nil {
						return err
					}
					p.recycle(w.out)
					<-p.slots
					next++
				}
			case r := <-read:
				if r.err != nil {
					readErr = r.err
					return r.err
				}
				total, read = r.n, nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return tw.Close()
	})
	if readErr != nil {
		return readErr
	}
	return err
}
