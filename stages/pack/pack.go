// Package pack is the `mdlm pack` stage: tokens/v1 -> packed/v1 blocks of
// --length tokens (spec §5.4), per split "<split>.arrow" (Arrow IPC, memory-mapped
// by training) and "<split>-NNNNN.parquet".
//
// Wrap mode (the reference's, for GPT-2 data): every document is followed by EOS,
// the stream is cut into pieces of L−2 tokens, and each piece becomes
// [BOS] piece [EOS]. By default the whole split is one stream and only the last
// remainder is dropped; --group-docs 1000 reproduces the reference exactly
// (datasets.map batches of 1000 documents, each batch's remainder dropped).
// Pad mode (LM1B with BERT): [BOS] doc [EOS] truncated to L and right-padded,
// with an attention mask.
package pack

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Options configure the stage.
type Options struct {
	In, Out   string
	Length    int
	Mode      string // "wrap" or "pad"; default from the dataset (wrap unless it says otherwise)
	GroupDocs int    // reference compatibility: remainder dropped per group of documents
	Tokenizer string // for BOS/EOS/PAD; default from the tokens/v1 manifest
	Tool      string
	Log       *slog.Logger
}

// Run packs every split and publishes the artifact.
func Run(ctx context.Context, opts Options) (artifact.Manifest, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	in, err := artifact.Read(opts.In, datasets.TokensType)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	if err := artifact.Verify(opts.In, in); err != nil {
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	if opts.Mode == "" {
		opts.Mode = "wrap"
		if w, ok := in.Params["wrap"].(bool); ok && !w {
			opts.Mode = "pad"
		}
	}
	if opts.Mode != "wrap" && opts.Mode != "pad" {
		return artifact.Manifest{}, fmt.Errorf("pack: --mode %q: want wrap or pad", opts.Mode)
	}
	if opts.Length < 3 {
		return artifact.Manifest{}, fmt.Errorf("pack: --length %d must be at least 3", opts.Length)
	}
	tokName := opts.Tokenizer
	if tokName == "" {
		tokName, _ = in.Params["tokenizer"].(string)
	}
	tok, err := tokenizer.Load(tokName)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	sp := datasets.Specials{BOS: int32(v.BOS), EOS: int32(v.EOS), PAD: int32(v.PAD)}
	splits, err := splitShards(opts.In)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	stats := map[string]any{}
	m := artifact.Manifest{Type: datasets.PackedType, Stage: "pack", Tool: opts.Tool,
		Inputs: map[string]string{"tokens": in.Digest()},
		Params: map[string]any{"length": opts.Length, "mode": opts.Mode, "group_docs": opts.GroupDocs,
			"tokenizer": tokName, "vocab_size": v.V, "mask_index": v.Mask, "bos": v.BOS, "eos": v.EOS, "pad": v.PAD,
			"dataset": in.Params["dataset"], "splits": stats}}
	return artifact.Publish(opts.Out, m, func(tmp string) error {
		names := make([]string, 0, len(splits))
		for s := range splits {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, split := range names {
			st, err := packSplit(ctx, tmp, split, splits[split], opts, sp)
			if err != nil {
				return err
			}
			stats[split] = st
			opts.Log.Info("packed split", "split", split, "blocks", st["blocks"], "dropped_tokens", st["dropped_tokens"])
		}
		return nil
	})
}

// readTables reads the shards' row groups on a separate goroutine (decoding
// overlaps packing and writing) and hands them to fn in order.
func readTables(ctx context.Context, shards []string, fn func(datasets.TokensTable) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tables := make(chan datasets.TokensTable, 2)
	errc := make(chan error, 1)
	go func() {
		defer close(tables)
		for _, shard := range shards {
			err := datasets.ScanTokensTables(shard, func(t datasets.TokensTable) error {
				select {
				case tables <- t:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for t := range tables {
		if err := fn(t); err != nil {
			cancel()
			for range tables {
			}
			return err
		}
	}
	return <-errc
}

// splitShards groups "<split>-NNNNN.parquet" files by split, in order.
func splitShards(dir string) (map[string][]string, error) {
	files, err := datasets.Shards(dir, "*")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range files {
		base := filepath.Base(f)
		i := strings.LastIndex(base, "-")
		if i <= 0 {
			return nil, fmt.Errorf("%s: shard name is not <split>-NNNNN.parquet", f)
		}
		out[base[:i]] = append(out[base[:i]], f)
	}
	return out, nil
}

func packSplit(ctx context.Context, dir, split string, shards []string, opts Options, sp datasets.Specials) (map[string]any, error) {
	w, err := datasets.NewPackedWriter(dir, split, opts.Length)
	if err != nil {
		return nil, err
	}
	var wrapper *datasets.Wrapper
	if opts.Mode == "wrap" {
		wrapper, err = datasets.NewWrapper(datasets.WrapOptions{Length: opts.Length, GroupDocs: opts.GroupDocs}, sp, w.Write)
		if err != nil {
			return nil, err
		}
	}
	var docs, tokens int64
	err = readTables(ctx, shards, func(t datasets.TokensTable) error {
		for i := range t.IDs {
			ids := t.Flat[t.Offsets[i]:t.Offsets[i+1]]
			docs++
			tokens += int64(len(ids))
			var err error
			if wrapper != nil {
				err = wrapper.Add(ids)
			} else {
				err = w.Write(datasets.PadBlock(ids, opts.Length, sp))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	dropped := 0
	if wrapper != nil {
		if err := wrapper.Flush(); err != nil {
			return nil, err
		}
		dropped = wrapper.Dropped
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return map[string]any{"documents": docs, "tokens": tokens, "blocks": w.Rows, "dropped_tokens": dropped}, nil
}
