// Package tokenize is the `mdlm tokenize` stage: text/v1 -> tokens/v1. Each input
// shard becomes one output shard "<split>-NNNNN.parquet" (columns id, ids), the
// text first passed through the dataset's detokenizer (spec §5.3) and encoded
// without special tokens on every core.
//
// Sharding: with --num-shards N, process --shard-index i takes the input shards
// whose position is i mod N. Every process writes its finished shards atomically
// into "<out>.partial/" and skips shards already there (a rerun resumes); the
// process that completes the last shard publishes the artifact.
package tokenize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/detokenize"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Options configure the stage.
type Options struct {
	In, Out     string
	Tokenizer   string // default: the dataset's (from the text/v1 manifest), else gpt2
	Detokenizer string // dataset name for the detokenizer; default from the manifest; "none" disables
	ShardIndex  int
	NumShards   int
	Workers     int
	Tool        string
	Log         *slog.Logger
}

// ErrNotLast is returned (wrapped) by a shard that finished but left publication
// to the process completing the last shard.
var ErrNotLast = errors.New("other shards still running")

// Run tokenizes this process's shards and publishes when all are done.
func Run(ctx context.Context, opts Options) (artifact.Manifest, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.NumShards <= 0 {
		opts.NumShards = 1
	}
	if opts.ShardIndex < 0 || opts.ShardIndex >= opts.NumShards {
		return artifact.Manifest{}, fmt.Errorf("tokenize: --shard-index %d outside [0, %d)", opts.ShardIndex, opts.NumShards)
	}
	in, err := artifact.Read(opts.In, datasets.TextType)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	if err := artifact.Verify(opts.In, in); err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	tokName := opts.Tokenizer
	if tokName == "" {
		tokName, _ = in.Params["tokenizer"].(string)
	}
	if tokName == "" {
		tokName = "gpt2"
	}
	tok, err := tokenizer.Load(tokName)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	detokName := opts.Detokenizer
	if detokName == "" {
		detokName, _ = in.Params["detokenizer"].(string)
	}
	detok := detokenize.For(detokName)
	shards, err := datasets.Shards(opts.In, "*")
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: %w", err)
	}
	partial := opts.Out + ".partial"
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return artifact.Manifest{}, err
	}
	for i, shard := range shards {
		if i%opts.NumShards != opts.ShardIndex {
			continue
		}
		if err := ctx.Err(); err != nil {
			return artifact.Manifest{}, err
		}
		dst := filepath.Join(partial, filepath.Base(shard))
		if _, err := os.Stat(dst); err == nil {
			opts.Log.Info("shard already tokenized, skipping", "shard", filepath.Base(shard))
			continue
		}
		if err := tokenizeShard(ctx, shard, dst, tok, detok, opts.Workers); err != nil {
			return artifact.Manifest{}, fmt.Errorf("tokenize %s: %w", shard, err)
		}
		opts.Log.Info("tokenized shard", "shard", filepath.Base(shard))
	}
	done, _ := filepath.Glob(filepath.Join(partial, "*.parquet"))
	if len(done) < len(shards) {
		return artifact.Manifest{}, fmt.Errorf("tokenize: shard %d of %d finished; %d of %d input shards done: %w",
			opts.ShardIndex, opts.NumShards, len(done), len(shards), ErrNotLast)
	}
	if err := claimPublishing(partial, opts.Log); err != nil {
		return artifact.Manifest{}, fmt.Errorf("tokenize: another process is publishing %s: %w", opts.Out, ErrNotLast)
	}
	m := artifact.Manifest{Type: datasets.TokensType, Stage: "tokenize", Tool: opts.Tool,
		Inputs: map[string]string{"text": in.Digest()},
		Params: map[string]any{"tokenizer": tokName, "detokenizer": detokName, "dataset": in.Params["dataset"],
			"wrap": in.Params["wrap"], "vocab_size": tok.VocabSize()}}
	m, err = artifact.Publish(opts.Out, m, func(tmp string) error {
		for _, f := range done {
			if err := os.Rename(f, filepath.Join(tmp, filepath.Base(f))); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		os.RemoveAll(partial)
	} else {
		os.Remove(filepath.Join(partial, ".publishing"))
	}
	return m, err
}

// stalePublishing is how old a publishing claim must be before a process
// takes it over: its owner died mid-publication (publishing takes seconds).
const stalePublishing = 30 * time.Minute

// claimPublishing makes this process the one that publishes: an atomic mkdir,
// or the takeover of a claim left by a process that died while publishing.
func claimPublishing(partial string, log *slog.Logger) error {
	claim := filepath.Join(partial, ".publishing")
	err := os.Mkdir(claim, 0o755)
	if err == nil {
		return nil
	}
	st, serr := os.Stat(claim)
	if serr != nil || time.Since(st.ModTime()) < stalePublishing {
		return err
	}
	log.Warn("taking over a stale publishing claim (its process died?)", "claim", claim, "age", time.Since(st.ModTime()).Round(time.Second))
	if err := os.Remove(claim); err != nil {
		return err
	}
	return os.Mkdir(claim, 0o755)
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
	for w := 0; w < workers; w++ {
		enc := tok
		if c, ok := tok.(interface{ Clone() tokenizer.Tokenizer }); ok {
			enc = c.Clone()
		}
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

// readChunks scans the text shard into chunks; each takes a slot.
func readChunks(ctx context.Context, src string, slots chan struct{}, todo chan<- *chunk) error {
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
	err := datasets.ScanParquet(src, []string{"id", "text"}, func(rows []datasets.TextRow) error {
		for _, r := range rows {
			c.ids = append(c.ids, r.ID)
			c.texts = append(c.texts, strings.Clone(r.Text)) // the reader reuses its buffers
			size += len(r.Text)
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
