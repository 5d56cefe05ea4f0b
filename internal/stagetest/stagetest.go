// Package stagetest runs stages in tests as the command line would: through
// stage.Execute, with a quiet logger and the default compute backend.
package stagetest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// Env is a stage environment for tests: logs discarded, the default backend.
func Env() *stage.Env {
	return &stage.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Tool: "mdlm test",
		Backend: func() (compute.Backend, string, error) {
			b, err := backend.Shared()
			if err != nil {
				return nil, "", err
			}
			return b, backend.Describe(b), nil
		}}
}

// Run executes one stage process with Env and returns its manifest.
func Run(ctx context.Context, def stage.Def, opts stage.Options) (artifact.Manifest, error) {
	m, _, err := stage.Execute(ctx, Env(), def, opts)
	return m, err
}

// TextArtifact publishes a text/v1 artifact of docs (split train, shardRows
// documents per shard) without running a stage.
func TextArtifact(t testing.TB, shardRows int, docs ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "text")
	_, err := artifact.Publish(dir, artifact.Manifest{Type: artifact.TextType, Stage: "test",
		Params: artifact.Params(artifact.TextMeta{TextSplit: string(datasets.ByLine)})}, func(tmp string) error {
		w := datasets.NewShardWriter[datasets.TextRow](tmp, "train", shardRows)
		for i, d := range docs {
			if err := w.Write(datasets.TextRow{ID: int64(i), Text: d}); err != nil {
				return err
			}
		}
		return w.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TokensArtifact publishes a tokens/v1 artifact of docs encoded by the named
// tokenizer (split train, one shard) without running a stage.
func TokensArtifact(t testing.TB, tok string, docs ...string) string {
	t.Helper()
	enc, err := tokenizer.Load(tok)
	if err != nil {
		t.Fatal(err)
	}
	table := datasets.TokensTable{Offsets: []int64{0}}
	for i, d := range docs {
		for _, id := range enc.Encode(d) {
			table.Flat = append(table.Flat, int32(id))
		}
		table.IDs = append(table.IDs, int64(i))
		table.Offsets = append(table.Offsets, int64(len(table.Flat)))
	}
	dir := filepath.Join(t.TempDir(), "tokens")
	_, err = artifact.Publish(dir, artifact.Manifest{Type: artifact.TokensType, Stage: "test",
		Params: artifact.Params(artifact.TokensMeta{Tokenizer: tok, VocabSize: enc.VocabSize()})}, func(tmp string) error {
		path := filepath.Join(tmp, "train-00000.parquet")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w, err := datasets.NewTokensWriter(f, path)
		if err != nil {
			return err
		}
		if err := w.WriteTable(table); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// PackedArtifact publishes a small packed/v1 artifact without running a stage:
// byte-level ids (vocabulary 259, [MASK] 258, BOS/EOS 256), L 16, splits train
// and valid of the same 40 blocks of text.
func PackedArtifact(t testing.TB) string {
	t.Helper()
	const L = 16
	text := strings.Repeat("In the beginning God created the heaven and the earth. ", 40)
	var blocks [][]int32
	for i := 0; i+L-2 <= len(text); i += L - 2 {
		ids := []int32{256}
		for _, c := range []byte(text[i : i+L-2]) {
			ids = append(ids, int32(c))
		}
		blocks = append(blocks, append(ids, 256))
	}
	return PackedBlocks(t, map[string][][]int32{"train": blocks, "valid": blocks})
}

// PackedBlocks publishes a packed/v1 artifact with PackedArtifact's byte-level
// vocabulary and L 16 whose splits hold the given blocks verbatim (every
// position attended), unchecked: hostile-input tests give it empty splits and
// ids beyond the vocabulary.
func PackedBlocks(t testing.TB, splits map[string][][]int32) string {
	t.Helper()
	return PackedWith(t, artifact.PackedMeta{Length: 16, Mode: "wrap", Tokenizer: "bytes", VocabSize: 259, MaskIndex: 258,
		BOS: 256, EOS: 256, PAD: 256}, splits)
}

// PackedWith publishes a packed/v1 artifact with meta's vocabulary and block
// length whose splits hold the given blocks verbatim (every position attended).
func PackedWith(t testing.TB, meta artifact.PackedMeta, splits map[string][][]int32) string {
	t.Helper()
	L := meta.Length
	dir := filepath.Join(t.TempDir(), "packed")
	meta.Splits = map[string]artifact.SplitStats{}
	_, err := artifact.Publish(dir, artifact.Manifest{Type: artifact.PackedType, Stage: "test", Params: artifact.Params(meta)}, func(tmp string) error {
		for split, blocks := range splits {
			w, err := datasets.NewPackedWriter(tmp, split, L)
			if err != nil {
				return err
			}
			for _, ids := range blocks {
				mask := make([]int8, len(ids))
				for j := range mask {
					mask[j] = 1
				}
				if err := w.Write(datasets.PackedRow{InputIDs: ids, AttentionMask: mask}); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
