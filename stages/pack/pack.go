// Package pack is the `mdlm pack` stage: tokens/v1 -> packed/v1 blocks of
// --length tokens (`dataloader.py: group_texts`, wrap mode), per split "<split>.arrow" (Arrow IPC, memory-mapped
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
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Def declares the stage.
var Def = stage.Def{Kind: "pack", Version: 1, Output: artifact.PackedType,
	Help:   "Pack tokens/v1 into fixed-length blocks (packed/v1: Arrow and Parquet); shards by split.",
	Inputs: []stage.Input{{Name: "tokens", Type: artifact.TokensType}},
	New:    func() stage.Options { return &Options{} }}

// Options are the stage's flags.
type Options struct {
	In        string `arg:"" input:"tokens" stream:"" help:"tokens/v1 artifact." type:"existingdir"`
	Out       string `short:"o" required:"" output:"" help:"packed/v1 artifact directory to create." type:"path"`
	Length    int    `default:"1024" help:"Block length L (model.length)."`
	Mode      string `enum:",wrap,pad" default:"" help:"wrap (BOS doc EOS ... cut to L) or pad (one document per block, truncated/padded, with an attention mask); default: the dataset's."`
	GroupDocs int    `help:"Reference compatibility: drop the remainder per group of this many documents (the reference: 1000)."`
	Tokenizer string `help:"Tokenizer for BOS/EOS/PAD (default: the one that tokenized)." digest:"name-or-file"`
	NoEOS     bool   `name:"no-eos" help:"Wrap mode without the per-block [BOS] ... [EOS] (BD3-LM's insert_special_tokens=False): documents still end in EOS, the stream is cut into blocks of L tokens."`
	stage.Sharding
}

// plan is the resolved input and settings.
type plan struct {
	in      artifact.Manifest
	meta    artifact.PackedMeta
	noEOS   bool // --no-eos
	sp      datasets.Specials
	splits  map[string][]string
	ordered []string
}

func (o *Options) plan() (*plan, error) {
	in, tm, err := stage.OpenArtifact[artifact.TokensMeta](o.In)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	mode := o.Mode
	if mode == "" {
		mode = "wrap"
		if tm.Wrap != nil && !*tm.Wrap {
			mode = "pad"
		}
	}
	if mode != "wrap" && mode != "pad" {
		return nil, fmt.Errorf("pack: --mode %q: want wrap or pad", mode)
	}
	if o.Length < 3 {
		return nil, fmt.Errorf("pack: --length %d must be at least 3", o.Length)
	}
	if o.NoEOS && mode != "wrap" {
		return nil, fmt.Errorf("pack: --no-eos applies to wrap mode, not --mode %s (pad mode puts one document in each block)", mode)
	}
	tokName := o.Tokenizer
	if tokName == "" {
		if tokName, err = artifact.ResolveTokenizer(o.In, tm.Tokenizer); err != nil {
			return nil, fmt.Errorf("pack: %w", err)
		}
	}
	tok, err := tokenizer.Load(tokName)
	if err != nil {
		return nil, fmt.Errorf("pack: --tokenizer: %w", err)
	}
	v, err := tokenizer.ForModel(tok)
	if err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	p := &plan{in: in, noEOS: o.NoEOS, sp: datasets.Specials{BOS: int32(v.BOS), EOS: int32(v.EOS), PAD: int32(v.PAD)},
		meta: artifact.PackedMeta{Length: o.Length, Mode: mode, GroupDocs: o.GroupDocs, Tokenizer: tokName,
			VocabSize: v.V, MaskIndex: v.Mask, BOS: v.BOS, EOS: v.EOS, PAD: v.PAD, Dataset: tm.Dataset,
			Splits: map[string]artifact.SplitStats{}}}
	if p.splits, err = splitShards(o.In); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	for s := range p.splits {
		p.ordered = append(p.ordered, s)
	}
	sort.Strings(p.ordered)
	return p, nil
}

// packedSplit is what a finished split leaves in the partial directory.
type packedSplit struct {
	Stats artifact.SplitStats `json:"stats"`
	Files []string            `json:"files"`
}

func splitRecord(partial, split string) string { return filepath.Join(partial, split+".split.json") }

// packed reports whether a split's record is readable and every file it lists
// is in partial.
func packed(partial, split string) bool {
	raw, err := os.ReadFile(splitRecord(partial, split))
	if err != nil {
		return false
	}
	var ps packedSplit
	if json.Unmarshal(raw, &ps) != nil || len(ps.Files) == 0 {
		return false
	}
	for _, f := range ps.Files {
		if _, err := os.Stat(filepath.Join(partial, filepath.FromSlash(f))); err != nil {
			return false
		}
	}
	return true
}

// WriteShard packs the splits whose position (in name order) is index mod
// count into partial, each split's files moved there together and recorded
// last (a rerun skips recorded splits).
func (o *Options) WriteShard(ctx context.Context, env *stage.Env, partial string, index, count int) error {
	p, err := o.plan()
	if err != nil {
		return err
	}
	log := env.Logger()
	for i, split := range p.ordered {
		if i%count != index {
			continue
		}
		if packed(partial, split) {
			log.Info("split already packed, skipping", "split", split)
			continue
		}
		tmp := filepath.Join(partial, ".tmp-"+split)
		os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return err
		}
		st, err := packSplit(ctx, tmp, split, p.splits[split], p)
		if err == nil {
			err = checkBlocks(log, split, st, p.meta, p.noEOS)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("pack %s: %w", split, err)
		}
		files, err := artifact.ListFiles(tmp)
		if err != nil {
			return err
		}
		if err := stage.MoveFiles(tmp, partial, files); err != nil {
			return err
		}
		os.RemoveAll(tmp)
		// The record goes last, by rename but without an fsync of its own: the
		// files it lists are synced, and a record lost or torn in a crash only
		// means the split is packed again (see packed).
		raw, _ := json.Marshal(packedSplit{Stats: st, Files: files})
		tmpRecord := splitRecord(partial, split) + ".tmp"
		if err := os.WriteFile(tmpRecord, raw, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmpRecord, splitRecord(partial, split)); err != nil {
			return err
		}
		log.Info("packed split", "split", split, "blocks", st.Blocks, "dropped_tokens", st.DroppedTokens)
	}
	return nil
}

// Assemble moves every split's files into the artifact.
func (o *Options) Assemble(ctx context.Context, env *stage.Env, partial, dir string) (artifact.Manifest, error) {
	p, err := o.plan()
	if err != nil {
		return artifact.Manifest{}, err
	}
	for _, split := range p.ordered {
		raw, err := os.ReadFile(splitRecord(partial, split))
		if err != nil {
			return artifact.Manifest{}, fmt.Errorf("pack: split %s not packed: %w", split, err)
		}
		var ps packedSplit
		if err := json.Unmarshal(raw, &ps); err != nil {
			return artifact.Manifest{}, fmt.Errorf("pack: %s: %w", splitRecord(partial, split), err)
		}
		if err := stage.MoveFiles(partial, dir, ps.Files); err != nil {
			return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
		}
		p.meta.Splits[split] = ps.Stats
	}
	if p.meta.Tokenizer, err = artifact.EmbedTokenizer(dir, p.meta.Tokenizer); err != nil { // a file travels with the blocks
		return artifact.Manifest{}, fmt.Errorf("pack: %w", err)
	}
	params := artifact.Params(p.meta)
	if p.noEOS {
		params[NoEOSParam] = true
	}
	return artifact.Manifest{Inputs: map[string]string{"tokens": p.in.Digest()}, Params: params}, nil
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
			err := scanShard(shard, func(t datasets.TokensTable) error {
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

// scanShard reads one tokens/v1 shard, local or streamed
// (stage.OpenInputFile), and verifies it before returning: the split's
// files are kept only when every shard it read verified.
func scanShard(shard string, fn func(datasets.TokensTable) error) error {
	return stage.ScanInput(shard, func(in stage.InputFile) error {
		return datasets.ScanTokensTablesAt(in, in.Size(), in.Name(), fn)
	})
}

// splitShards groups "<split>-NNNNN.parquet" files by split, in order.
func splitShards(dir string) (map[string][]string, error) {
	files, err := stage.InputShards(dir, "*")
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

func packSplit(ctx context.Context, dir, split string, shards []string, p *plan) (artifact.SplitStats, error) {
	var none artifact.SplitStats
	opts, sp := p.meta, p.sp
	w, err := datasets.NewPackedWriter(dir, split, opts.Length)
	if err != nil {
		return none, err
	}
	wrapper, err := newPacker(p, w.Write)
	if err != nil {
		return none, err
	}
	var docs, tokens int64
	err = readTables(ctx, shards, func(t datasets.TokensTable) error {
		for i := range t.IDs {
			ids := t.Flat[t.Offsets[i]:t.Offsets[i+1]]
			if err := checkIDs(ids, opts, t.IDs[i]); err != nil {
				return err
			}
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
		return none, err
	}
	dropped := 0
	if wrapper != nil {
		if err := wrapper.Flush(); err != nil {
			return none, err
		}
		dropped = wrapper.dropped()
	}
	if err := w.Close(); err != nil {
		return none, err
	}
	return artifact.SplitStats{Documents: docs, Tokens: tokens, Blocks: int64(w.Rows), DroppedTokens: int64(dropped)}, nil
}

// newPacker is the wrap-mode packer of the plan (nil in pad mode): the
// reference's [BOS] piece [EOS] blocks, or plain blocks with --no-eos.
func newPacker(p *plan, emit func(datasets.PackedRow) error) (packer, error) {
	if p.meta.Mode != "wrap" {
		return nil, nil
	}
	if p.noEOS {
		return newPlainPacker(p.meta.Length, p.meta.GroupDocs, p.sp.EOS, emit)
	}
	w, err := datasets.NewWrapper(datasets.WrapOptions{Length: p.meta.Length, GroupDocs: p.meta.GroupDocs}, p.sp, emit)
	if err != nil {
		return nil, err
	}
	return wrapPacker{w}, nil
}

// checkBlocks refuses a train split that packs into no block (issue 19, defect
// 10: training on it divided by zero). Another split (valid, test) that comes
// out empty is published with blocks: 0 and a warning, because a tiny hold-out
// need not stop training: train refuses an empty valid split only when asked to
// validate (--eval-every), and eval refuses to evaluate an empty split.
func checkBlocks(log *slog.Logger, split string, st artifact.SplitStats, meta artifact.PackedMeta, noEOS bool) error {
	if st.Blocks > 0 {
		return nil
	}
	why := emptyReason(st, meta, noEOS)
	if split == "train" {
		return fmt.Errorf("split %q has no blocks: %s", split, why)
	}
	log.Warn("split has no blocks; stages reading it will refuse it", "split", split, "why", why)
	return nil
}

// emptyReason explains why a split made no block.
func emptyReason(st artifact.SplitStats, meta artifact.PackedMeta, noEOS bool) string {
	if st.Documents == 0 || meta.Mode == "pad" {
		return fmt.Sprintf("it has %d documents", st.Documents)
	}
	need := meta.Length - 2
	if noEOS {
		need = meta.Length
	}
	if meta.GroupDocs > 0 {
		return fmt.Sprintf("%d documents of %d tokens in all; each group of --group-docs %d documents needs at least %d tokens "+
			"(an EOS after each document included) to fill one block of --length %d; use more text, a shorter --length or no --group-docs",
			st.Documents, st.Tokens, meta.GroupDocs, need, meta.Length)
	}
	return fmt.Sprintf("%d documents of %d tokens in all (%d with an EOS after each), but one block of --length %d needs at least %d; "+
		"use more text or a shorter --length", st.Documents, st.Tokens, st.Tokens+st.Documents, meta.Length, need)
}

// checkIDs refuses a token id outside the model vocabulary: training and
// evaluation would index embeddings with it (issue 19, defect 10).
func checkIDs(ids []int32, meta artifact.PackedMeta, doc int64) error {
	for _, id := range ids {
		if id < 0 || int(id) >= meta.VocabSize {
			return fmt.Errorf("document id %d: token id %d is outside the vocabulary [0, %d) of tokenizer %s",
				doc, id, meta.VocabSize, meta.Tokenizer)
		}
	}
	return nil
}
