package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/stages/download"
	"github.com/mdlm-go/mdlm/stages/pack"
	"github.com/mdlm-go/mdlm/stages/tokenize"
)

// DownloadCmd is `mdlm download`.
type DownloadCmd struct {
	Sources    []string `arg:"" optional:"" help:"Local text, JSON lines or Parquet files, folders or globs (.gz ok)." type:"path"`
	Dataset    string   `help:"A registered dataset (openwebtext-split, wikitext103, lm1b, ...), fetched from the Hugging Face hub ($HF_ENDPOINT, $HF_TOKEN)."`
	Out        string   `short:"o" required:"" help:"text/v1 artifact directory to create." type:"path"`
	Revision   string   `default:"main" help:"Hub revision (branch, tag, commit or refs/convert/parquet)."`
	CacheDir   string   `help:"Where raw hub files go (default $MDLM_CACHE or ~/.cache/mdlm/hub)." env:"MDLM_CACHE" type:"path"`
	Workers    int      `default:"4" help:"Parallel transfers."`
	TextColumn string   `default:"text" help:"Text field of local JSON lines / Parquet files."`
	TextSplit  string   `default:"line" enum:"line,paragraph,document" help:"How plain-text files become documents."`
	HoldOut    int      `help:"Move the last N documents of local sources to a valid split."`
	ShardRows  int      `default:"100000" help:"Documents per output Parquet shard."`
	ChunkChars int      `default:"256" help:"text8: characters per document (the model length)."`
}

// Run downloads.
func (c *DownloadCmd) Run(ctx context.Context, log *slog.Logger) error {
	bar := newProgress("download")
	defer bar.done()
	var got int64
	m, err := download.Run(ctx, download.Options{Dataset: c.Dataset, Sources: c.Sources, Out: c.Out, Revision: c.Revision,
		CacheDir: c.CacheDir, Workers: c.Workers, TextColumn: c.TextColumn, TextSplit: datasets.TextSplit(c.TextSplit),
		HoldOut: c.HoldOut, ShardRows: c.ShardRows, ChunkChars: c.ChunkChars, Client: hub.NewClient(), Log: log, Tool: "mdlm " + toolVersion(),
		Progress: func(n int64) { got += n; bar.bytes(got) }})
	if err != nil {
		return err
	}
	log.Info("wrote text artifact", "out", c.Out, "digest", m.Digest(), "files", len(m.Files))
	return nil
}

// TokenizeCmd is `mdlm tokenize`.
type TokenizeCmd struct {
	In          string `arg:"" help:"text/v1 artifact." type:"existingdir"`
	Out         string `short:"o" required:"" help:"tokens/v1 artifact directory to create." type:"path"`
	Tokenizer   string `help:"gpt2, bert-base-uncased, text8, bytes or a tokenizer.json (default: the dataset's)."`
	Detokenizer string `help:"Dataset whose detokenizer to apply first (default: the dataset's; 'none' for none)."`
	ShardIndex  int    `help:"This process's shard." env:"SLURM_ARRAY_TASK_ID,JOB_COMPLETION_INDEX"`
	NumShards   int    `default:"1" help:"Number of processes sharing the work." env:"SLURM_ARRAY_TASK_COUNT"`
	Workers     int    `help:"Encoding goroutines (default: all cores)."`
}

// dataStageGC lets the garbage collector run 4x less often during a data stage
// (unless $GOGC is set): these stages stream bounded chunks, so the extra heap
// is small, and collection was about a tenth of their CPU. It returns the undo,
// for stages run in process by `mdlm run`.
func dataStageGC() func() {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(400)
	return func() { debug.SetGCPercent(old) }
}

// Run tokenizes.
func (c *TokenizeCmd) Run(ctx context.Context, log *slog.Logger) error {
	defer dataStageGC()()
	m, err := tokenize.Run(ctx, tokenize.Options{In: c.In, Out: c.Out, Tokenizer: c.Tokenizer, Detokenizer: c.Detokenizer,
		ShardIndex: c.ShardIndex, NumShards: c.NumShards, Workers: c.Workers, Tool: "mdlm " + toolVersion(), Log: log})
	if errors.Is(err, tokenize.ErrNotLast) {
		log.Info("shard done; the last shard to finish publishes", "detail", err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("wrote tokens artifact", "out", c.Out, "digest", m.Digest())
	return nil
}

// PackCmd is `mdlm pack`.
type PackCmd struct {
	In        string `arg:"" help:"tokens/v1 artifact." type:"existingdir"`
	Out       string `short:"o" required:"" help:"packed/v1 artifact directory to create." type:"path"`
	Length    int    `default:"1024" help:"Block length L (model.length)."`
	Mode      string `enum:",wrap,pad" default:"" help:"wrap (BOS doc EOS ... cut to L) or pad (one document per block, truncated/padded, with an attention mask); default: the dataset's."`
	GroupDocs int    `help:"Reference compatibility: drop the remainder per group of this many documents (the reference: 1000)."`
	Tokenizer string `help:"Tokenizer for BOS/EOS/PAD (default: the one that tokenized)."`
}

// Run packs.
func (c *PackCmd) Run(ctx context.Context, log *slog.Logger) error {
	defer dataStageGC()()
	m, err := pack.Run(ctx, pack.Options{In: c.In, Out: c.Out, Length: c.Length, Mode: c.Mode, GroupDocs: c.GroupDocs,
		Tokenizer: c.Tokenizer, Tool: "mdlm " + toolVersion(), Log: log})
	if err != nil {
		return err
	}
	log.Info("wrote packed artifact", "out", c.Out, "digest", m.Digest(), "splits", m.Params["splits"])
	return nil
}
