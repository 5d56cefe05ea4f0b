// Package tokenize is the `mdlm tokenize` stage: text/v1 -> tokens/v1. Each input
// shard becomes one output shard "<split>-NNNNN.parquet" (columns id, ids), the
// text first passed through the dataset's detokenizer (`dataloader.py: get_dataset`, its detokenizers) and encoded
// without special tokens on every core.
//
// Sharding (stage.Sharder): with --num-shards N, process --shard-index i takes
// the input shards whose position is i mod N and writes each finished shard
// atomically into the partial directory the executor gives it, skipping shards
// already there (a rerun resumes); the executor publishes when all are done.
package tokenize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

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
	New:    func() stage.Options { return &Options{} }, DataGC: true}

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
	for i, shard := range s.shards {
		if i%count != index {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := filepath.Join(partial, filepath.Base(shard))
		if _, err := os.Stat(dst); err == nil {
			log.Info("shard already tokenized, skipping", "shard", filepath.Base(shard))
			continue
		}
		if err := tokenizeShard(ctx, shard, dst, s.tok, s.detok, o.Workers); err != nil {
			return fmt.Errorf("tokenize %s: %w", shard, err)
		}
		log.Info("tokenized shard", "shard", filepath.Base(shard))
	}
	return nil
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

// chunk is a run of consecutive documents of a shard.
type chunk struct {
	seq   int
	ids   []int64
	texts []string
	out   datasets.TokensTable
}

// tokenizeShard streams one text/v1 shard into its tokens/v1 shard, written
// atomically: a reader cuts the documents into chunks of about chunkBytes of
// text, workers encode chunks (each with its own tokenizer state), and the
// writer appends finished chunks in order as row groups while later ones are
// still being encoded. At most 2×workers chunks are in memory.
func tokenizeShard(ctx context.Context, src, dst string, tok tokenizer.Tokenizer, detok detokenize.Func, workers int) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo, done := make(chan *chunk, workers), make(chan *chunk, workers)
	slots := make(chan struct{}, 2*workers) // chunks read but not yet written
	go func() {
		defer close(todo)
		if err := readChunks(ctx, src, slots, todo); err != nil {
			cancel(err)
		}
	}()
	var wg sync.WaitGroup
	for _, enc := range tokenizer.Workers(tok, workers) { // one pre-token cache shared by all
		wg.Add(1)
		go func() {
			defer wg.Done()
			encodeChunks(enc, detok, todo, done)
		}()
	}
	go func() { wg.Wait(); close(done) }()
	err := atomicfile.Write(dst, func(w io.Writer) error {
		tw, err := datasets.NewTokensWriter(w, dst)
		if err != nil {
			return err
		}
		if err := writeInOrder(ctx, tw, slots, done); err != nil {
			return err
		}
		if ctx.Err() != nil { // the input failed to verify: publish nothing
			return context.Cause(ctx)
		}
		return tw.Close()
	})
	cancel(nil)
	for range done { // let the workers finish after an error
	}
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// readChunks scans the text shard (local or streamed: stage.OpenInputFile)
// into chunks; each takes a slot. It verifies the shard before it returns,
// so the last chunk is written only after the input's sha256 checked.
func readChunks(ctx context.Context, src string, slots chan struct{}, todo chan<- *chunk) error {
	return stage.ScanInput(src, func(in stage.InputFile) error {
		return scanChunks(ctx, in, slots, todo)
	})
}

func scanChunks(ctx context.Context, in stage.InputFile, slots chan struct{}, todo chan<- *chunk) error {
	c, size, seq := &chunk{}, 0, 0
	send := func() error {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		todo <- c
		seq++
		c, size = &chunk{seq: seq}, 0
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
	if err == nil && (len(c.ids) > 0 || seq == 0) {
		err = send()
	}
	return err
}

// encodeChunks fills each chunk's token table.
func encodeChunks(tok tokenizer.Tokenizer, detok detokenize.Func, todo <-chan *chunk, done chan<- *chunk) {
	var scratch []int
	for c := range todo {
		t := datasets.TokensTable{IDs: c.ids, Offsets: make([]int64, 1, len(c.ids)+1)}
		n := 0
		for _, s := range c.texts {
			n += len(s)
		}
		t.Flat = make([]int32, 0, n/3+16)
		for _, s := range c.texts {
			if detok != nil {
				s = detok(s)
			}
			t.Flat, scratch = tokenizer.Encode32(tok, t.Flat, scratch, s)
			t.Offsets = append(t.Offsets, int64(len(t.Flat)))
		}
		c.out, c.texts = t, nil
		done <- c
	}
}

// writeInOrder appends finished chunks to tw in sequence, freeing their slots.
func writeInOrder(ctx context.Context, tw *datasets.TokensWriter, slots chan struct{}, done <-chan *chunk) error {
	waiting := map[int]*chunk{}
	next := 0
	for c := range done {
		waiting[c.seq] = c
		for w, ok := waiting[next]; ok; w, ok = waiting[next] {
			delete(waiting, next)
			if err := tw.WriteTable(w.out); err != nil {
				return err
			}
			<-slots
			next++
		}
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if len(waiting) > 0 {
		return fmt.Errorf("%d chunks never written", len(waiting))
	}
	return ctx.Err()
}
