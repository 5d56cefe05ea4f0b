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
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/detokenize"
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
		if err := tokenizeShard(shard, dst, tok, detok, opts.Workers); err != nil {
			return artifact.Manifest{}, fmt.Errorf("tokenize %s: %w", shard, err)
		}
		opts.Log.Info("tokenized shard", "shard", filepath.Base(shard))
	}
	done, _ := filepath.Glob(filepath.Join(partial, "*.parquet"))
	if len(done) < len(shards) {
		return artifact.Manifest{}, fmt.Errorf("tokenize: shard %d of %d finished; %d of %d input shards done: %w",
			opts.ShardIndex, opts.NumShards, len(done), len(shards), ErrNotLast)
	}
	if err := os.Mkdir(filepath.Join(partial, ".publishing"), 0o755); err != nil {
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

// tokenizeShard reads one text/v1 shard and writes its tokens/v1 shard atomically.
func tokenizeShard(src, dst string, tok tokenizer.Tokenizer, detok detokenize.Func, workers int) error {
	var rows []datasets.TextRow
	err := datasets.ScanParquet(src, []string{"id", "text"}, func(b []datasets.TextRow) error {
		for _, r := range b {
			rows = append(rows, datasets.TextRow{ID: r.ID, Text: strings.Clone(r.Text)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	texts := make([]string, len(rows))
	for i, r := range rows {
		texts[i] = r.Text
		if detok != nil {
			texts[i] = detok(r.Text)
		}
	}
	ids := tokenizer.BatchEncode(tok, texts, workers)
	out := make([]datasets.TokensRow, len(rows))
	for i, r := range rows {
		v := make([]int32, len(ids[i]))
		for j, x := range ids[i] {
			v[j] = int32(x)
		}
		out[i] = datasets.TokensRow{ID: r.ID, IDs: v}
	}
	return datasets.WriteTokensParquet(dst, out)
}
