// Package download is the `mdlm download` stage: fetch a registered dataset from
// the Hugging Face hub (or its URL), or read local text, JSON lines and Parquet
// files, and publish a text/v1 artifact: Parquet shards "<split>-NNNNN.parquet"
// with columns id (the document's index in source order, stable across reruns)
// and text, plus artifact.json.
package download

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
)

// Options configure a download.
type Options struct {
	Dataset    string   // registry name (exclusive with Sources)
	Sources    []string // local files, folders, globs
	Out        string
	Revision   string // hub revision (default "main")
	CacheDir   string // raw downloads (default $MDLM_CACHE or ~/.cache/mdlm/hub)
	Workers    int    // parallel transfers
	TextColumn string // for local JSON lines / Parquet (default "text")
	TextSplit  datasets.TextSplit
	HoldOut    int // move the last N documents of train to valid (local sources)
	ShardRows  int
	Client     *hub.Client
	Log        *slog.Logger
	Tool       string
	Progress   func(int64)
}

// Run downloads and publishes the text/v1 artifact.
func Run(ctx context.Context, opts Options) (artifact.Manifest, error) {
	if (opts.Dataset == "") == (len(opts.Sources) == 0) {
		return artifact.Manifest{}, fmt.Errorf("download: give either --dataset or local sources")
	}
	if opts.TextColumn == "" {
		opts.TextColumn = "text"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	var plan []splitPlan
	params := map[string]any{}
	if opts.Dataset != "" {
		d, err := datasets.Lookup(opts.Dataset)
		if err != nil {
			return artifact.Manifest{}, fmt.Errorf("download: %w", err)
		}
		plan, err = fetchDataset(ctx, d, &opts)
		if err != nil {
			return artifact.Manifest{}, err
		}
		params["dataset"], params["repo"], params["revision"] = d.Name, d.Repo, opts.Revision
		params["tokenizer"], params["wrap"], params["detokenizer"] = d.Tokenizer, d.Wrap, d.Detokenizer
	} else {
		files, err := datasets.ExpandSources(opts.Sources)
		if err != nil {
			return artifact.Manifest{}, fmt.Errorf("download: %w", err)
		}
		plan = []splitPlan{{split: "train", files: files, column: opts.TextColumn, holdOut: opts.HoldOut}}
		params["sources"] = opts.Sources
	}
	params["text_split"] = string(opts.TextSplit)
	m := artifact.Manifest{Type: datasets.TextType, Stage: "download", Params: params, Tool: opts.Tool}
	return artifact.Publish(opts.Out, m, func(tmp string) error { return writeText(tmp, plan, opts) })
}

// splitPlan is one source split: files read in order; holdOut moves the last
// documents to "valid".
type splitPlan struct {
	split   string
	files   []string
	column  string
	holdOut int
	keep    []string // splits to publish (nil: all)
}

func writeText(dir string, plan []splitPlan, opts Options) error {
	writers := map[string]*datasets.ShardWriter[datasets.TextRow]{}
	get := func(split string) *datasets.ShardWriter[datasets.TextRow] {
		if w, ok := writers[split]; ok {
			return w
		}
		w := datasets.NewShardWriter[datasets.TextRow](dir, split, opts.ShardRows)
		writers[split] = w
		return w
	}
	for _, p := range plan {
		var total int64 = -1
		if p.holdOut > 0 {
			total = 0
			for _, f := range p.files {
				n, err := datasets.CountDocs(f, p.column, opts.TextSplit)
				if err != nil {
					return err
				}
				total += n
			}
			if int64(p.holdOut) >= total {
				return fmt.Errorf("hold-out of %d documents leaves nothing to train on (%d documents)", p.holdOut, total)
			}
		}
		var id int64
		for _, f := range p.files {
			err := datasets.ReadDocs(f, p.column, opts.TextSplit, func(text string) error {
				split := p.split
				if total >= 0 && id >= total-int64(p.holdOut) {
					split = "valid"
				}
				defer func() { id++ }()
				if p.keep != nil && !slices.Contains(p.keep, split) {
					return nil
				}
				return get(split).Write(datasets.TextRow{ID: id, Text: text})
			})
			if err != nil {
				return err
			}
		}
		opts.Log.Info("read split", "split", p.split, "files", len(p.files), "documents", id)
	}
	names := make([]string, 0, len(writers))
	for s := range writers {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if err := writers[s].Close(); err != nil {
			return err
		}
	}
	return nil
}

// fetchDataset lists the repository, downloads the split files into the cache
// (resuming, verifying) and returns what to read.
func fetchDataset(ctx context.Context, d datasets.Dataset, opts *Options) ([]splitPlan, error) {
	if d.Repo == "" {
		return nil, fmt.Errorf("download %s: comes from %s, which this version fetches only through a local file (download it and pass the path)", d.Name, d.URL)
	}
	c := opts.Client
	if c == nil {
		c = hub.NewClient()
	}
	if opts.Revision == "" {
		opts.Revision = "main"
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = os.Getenv("MDLM_CACHE")
	}
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "mdlm", "hub")
	}
	files, err := c.ListFiles(ctx, d.Repo, opts.Revision)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", d.Name, err)
	}
	byPath := map[string]hub.File{}
	var paths []string
	for _, f := range files {
		byPath[f.Path] = f
		paths = append(paths, f.Path)
	}
	root := filepath.Join(cache, "datasets", d.Repo, opts.Revision)
	var plan []splitPlan
	splits := make([]string, 0, len(d.Splits))
	for s := range d.Splits {
		splits = append(splits, s)
	}
	sort.Strings(splits)
	for _, ours := range splits {
		sel := d.SplitFiles(paths, d.Splits[ours])
		if len(sel) == 0 {
			return nil, fmt.Errorf("download %s: no data files for split %q in %s@%s (listed %d files)", d.Name, d.Splits[ours], d.Repo, opts.Revision, len(files))
		}
		var todo []hub.File
		var local []string
		for _, p := range sel {
			todo = append(todo, byPath[p])
			local = append(local, filepath.Join(root, filepath.FromSlash(p)))
		}
		opts.Log.Info("downloading", "dataset", d.Name, "split", ours, "files", len(todo))
		if err := c.DownloadAll(ctx, d.Repo, opts.Revision, todo, root, opts.Workers, opts.Progress); err != nil {
			return nil, fmt.Errorf("download %s: %w", d.Name, err)
		}
		hold := 0
		if ours == "train" {
			hold = d.HoldOut
		}
		plan = append(plan, splitPlan{split: ours, files: local, column: d.TextColumn, holdOut: hold, keep: d.Keep})
	}
	return plan, nil
}
