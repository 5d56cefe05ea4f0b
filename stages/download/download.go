// Package download is the `mdlm download` stage: fetch a registered dataset from
// the Hugging Face hub (or its URL), or read local text, JSON lines and Parquet
// files, and publish a text/v1 artifact: Parquet shards "<split>-NNNNN.parquet"
// with columns id (the document's index in source order, stable across reruns)
// and text, plus artifact.json.
package download

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
	"github.com/mdlm-go/mdlm/stage"
)

// Def declares the stage.
var Def = stage.Def{Kind: "download", Version: 1, Output: artifact.TextType,
	Help: "Fetch a registered dataset from the hub, or read local files, into a text/v1 artifact.",
	New:  func() stage.Options { return &Options{} }, DataGC: true}

// Options are the stage's flags.
type Options struct {
	Sources    []string `arg:"" optional:"" help:"Local text, JSON lines or Parquet files, folders or globs (.gz ok), or s3://bucket/key objects and s3://bucket/prefix folders." type:"path" digest:"file"`
	Dataset    string   `help:"A registered dataset (openwebtext-split, wikitext103, lm1b, ...), fetched from the Hugging Face hub ($HF_ENDPOINT, $HF_TOKEN)."`
	Out        string   `short:"o" required:"" output:"" help:"text/v1 artifact directory to create." type:"path"`
	Revision   string   `default:"main" help:"Hub revision (branch, tag, commit or refs/convert/parquet)."`
	CacheDir   string   `help:"Where raw hub files go (default $MDLM_CACHE or ~/.cache/mdlm/hub)." env:"MDLM_CACHE" type:"path" cosmetic:""`
	Workers    int      `default:"4" help:"Parallel transfers." cosmetic:""`
	TextColumn string   `default:"text" help:"Text field of local JSON lines / Parquet files."`
	TextSplit  string   `default:"line" enum:"line,paragraph,document" help:"How plain-text files become documents."`
	HoldOut    int      `help:"Move the last N documents of local sources to a valid split."`
	Splits     []string `help:"Only these splits of --dataset (default: every split it publishes), e.g. --splits valid for an evaluation: the others are neither downloaded nor written."`
	ShardRows  int      `default:"100000" help:"Documents per output Parquet shard."`
	ChunkChars int      `default:"256" help:"text8: characters per document (the model length)."`

	Client   *hub.Client `kong:"-"` // default hub.NewClient()
	log      *slog.Logger
	progress func(int64)
}

// Build implements stage.Builder: fetch or read the sources and write the shards.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	opts := *o
	if (opts.Dataset == "") == (len(opts.Sources) == 0) {
		return artifact.Manifest{}, fmt.Errorf("download: give either --dataset or local sources")
	}
	if opts.TextColumn == "" {
		opts.TextColumn = "text"
	}
	if opts.TextSplit == "" {
		opts.TextSplit = string(datasets.ByLine)
	}
	opts.log = env.Logger()
	bar := env.StartProgress("download")
	defer bar.Done()
	var got int64
	opts.progress = func(n int64) { got += n; bar.Bytes(got) }
	var plan []splitPlan
	var s3Objects []s3Object
	meta := artifact.TextMeta{TextSplit: opts.TextSplit}
	if opts.Dataset != "" {
		d, err := datasets.Lookup(opts.Dataset)
		if err != nil {
			return artifact.Manifest{}, fmt.Errorf("download: --dataset: %w", err)
		}
		if err := checkSplits(d, opts.Splits); err != nil {
			return artifact.Manifest{}, err
		}
		if plan, err = fetchDataset(ctx, d, &opts); err != nil {
			return artifact.Manifest{}, err
		}
		plan = restrictPlan(plan, d, opts.Splits)
		wrap := d.Wrap
		meta.Dataset, meta.Repo, meta.Revision = d.Name, d.Repo, opts.Revision
		meta.Tokenizer, meta.Wrap, meta.Detokenizer = d.Tokenizer, &wrap, d.Detokenizer
	} else {
		if len(opts.Splits) > 0 {
			return artifact.Manifest{}, fmt.Errorf("download: --splits chooses among a --dataset's splits; local sources make one train split (and valid with --hold-out)")
		}
		files, objs, err := expandSources(ctx, &opts)
		if err != nil {
			return artifact.Manifest{}, err
		}
		plan = []splitPlan{{split: "train", files: files, column: opts.TextColumn, holdOut: opts.HoldOut}}
		meta.Sources = opts.Sources
		s3Objects = objs
	}
	if err := writeText(dirs.Out, plan, opts); err != nil {
		return artifact.Manifest{}, err
	}
	params := artifact.Params(meta)
	if len(s3Objects) > 0 {
		params["s3_objects"] = s3Objects // which version of each object was read
	}
	return artifact.Manifest{Params: params}, nil
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

// writeText reads every planned source in order and writes the text/v1 shards.
// Parsing (JSON, text splitting, Parquet decoding) and writing (Parquet encoding,
// Snappy, hashing) run on two goroutines, handing over batches of rows.
func writeText(dir string, plan []splitPlan, opts Options) error {
	w := newAsyncShards(dir, opts.ShardRows)
	err := readPlan(plan, opts, w.add)
	if cerr := w.close(); err == nil {
		err = cerr
	}
	return err
}

// readPlan streams the planned documents, with their ids and splits, to add.
func readPlan(plan []splitPlan, opts Options, add func(split string, row datasets.TextRow) error) error {
	for _, p := range plan {
		var total int64 = -1
		if p.holdOut > 0 {
			total = 0
			for _, f := range p.files {
				n, err := datasets.CountDocs(f, p.column, datasets.TextSplit(opts.TextSplit))
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
			err := datasets.ReadDocs(f, p.column, datasets.TextSplit(opts.TextSplit), func(text string) error {
				split := p.split
				if total >= 0 && id >= total-int64(p.holdOut) {
					split = "valid"
				}
				defer func() { id++ }()
				if p.keep != nil && !slices.Contains(p.keep, split) {
					return nil
				}
				return add(split, datasets.TextRow{ID: id, Text: text})
			})
			if err != nil {
				return err
			}
		}
		opts.log.Info("read split", "split", p.split, "files", len(p.files), "documents", id)
	}
	return nil
}

// asyncShards writes rows to per-split shard writers on a background goroutine.
type asyncShards struct {
	dir      string
	perShard int
	pending  map[string][]datasets.TextRow
	batches  chan textBatch
	done     chan error
	failed   atomic.Pointer[error]
}

type textBatch struct {
	split string
	rows  []datasets.TextRow
}

const textBatchRows = 256

func newAsyncShards(dir string, perShard int) *asyncShards {
	a := &asyncShards{dir: dir, perShard: perShard, pending: map[string][]datasets.TextRow{},
		batches: make(chan textBatch, 8), done: make(chan error, 1)}
	go a.write()
	return a
}

func (a *asyncShards) write() {
	writers := map[string]*datasets.ShardWriter[datasets.TextRow]{}
	var err error
	for b := range a.batches {
		if err != nil {
			continue // drain after a failure
		}
		w, ok := writers[b.split]
		if !ok {
			w = datasets.NewShardWriter[datasets.TextRow](a.dir, b.split, a.perShard)
			writers[b.split] = w
		}
		if err = w.Write(b.rows...); err != nil {
			a.failed.Store(&err)
		}
	}
	names := make([]string, 0, len(writers))
	for s := range writers {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		if cerr := writers[s].Close(); err == nil {
			err = cerr
		}
	}
	a.done <- err
}

// add queues a row; an earlier write failure stops the reading.
func (a *asyncShards) add(split string, row datasets.TextRow) error {
	if e := a.failed.Load(); e != nil {
		return *e
	}
	a.pending[split] = append(a.pending[split], row)
	if len(a.pending[split]) == textBatchRows {
		a.batches <- textBatch{split, a.pending[split]}
		a.pending[split] = nil
	}
	return nil
}

// close flushes the pending rows and finishes every shard.
func (a *asyncShards) close() error {
	splits := make([]string, 0, len(a.pending))
	for s := range a.pending {
		splits = append(splits, s)
	}
	sort.Strings(splits)
	for _, s := range splits {
		if len(a.pending[s]) > 0 {
			a.batches <- textBatch{s, a.pending[s]}
		}
	}
	close(a.batches)
	return <-a.done
}

// fetchDataset lists the repository, downloads the split files into the cache
// (resuming, verifying) and returns what to read.
func fetchDataset(ctx context.Context, d datasets.Dataset, opts *Options) ([]splitPlan, error) {
	c := opts.Client
	if c == nil {
		c = hub.NewClient()
	}
	if opts.Revision == "" {
		opts.Revision = "main"
	}
	cache := opts.CacheDir
	if cache == "" {
		cache = hub.CacheRoot()
	}
	if d.Repo == "" {
		return fetchURLDataset(ctx, c, d, cache, opts)
	}
	// The repository id and --revision become a cache path: check them before
	// anything is listed or written (issue 19, defect 2).
	root, err := hub.CachePath(cache, "datasets", d.Repo, opts.Revision)
	if err != nil {
		return nil, fmt.Errorf("download %s: --revision: %w", d.Name, err)
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
	var plan []splitPlan
	splits := make([]string, 0, len(d.Splits))
	for s := range d.Splits {
		splits = append(splits, s)
	}
	sort.Strings(splits)
	for _, ours := range splits {
		if !neededSplit(d, ours, opts.Splits) {
			opts.log.Info("skipping split (--splits)", "dataset", d.Name, "split", ours)
			continue
		}
		sel := d.SplitFiles(paths, d.Splits[ours])
		if len(sel) == 0 {
			return nil, fmt.Errorf("download %s: no data files for split %q in %s@%s (listed %d files)", d.Name, d.Splits[ours], d.Repo, opts.Revision, len(files))
		}
		var todo []hub.File
		var local []string
		for _, p := range sel {
			f, ok := byPath[p]
			if !ok {
				return nil, fmt.Errorf("download %s: split %q selected %q, which %s@%s does not list", d.Name, ours, p, d.Repo, opts.Revision)
			}
			lp, err := hub.LocalPath(root, p)
			if err != nil {
				return nil, fmt.Errorf("download %s: %s@%s: %w", d.Name, d.Repo, opts.Revision, err)
			}
			todo = append(todo, f)
			local = append(local, lp)
		}
		opts.log.Info("downloading", "dataset", d.Name, "split", ours, "files", len(todo))
		if err := c.DownloadAll(ctx, d.Repo, opts.Revision, todo, root, opts.Workers, opts.progress); err != nil {
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

// fetchURLDataset handles the datasets that come from plain URLs: lambada (a JSON
// lines file used whole as valid) and text8 (a zip of one 100M-character line,
// cut into the D3PM character splits and documents of ChunkChars characters,
// the last partial chunk dropped; text8-crop's train chunks are twice as long).
func fetchURLDataset(ctx context.Context, c *hub.Client, d datasets.Dataset, cache string, opts *Options) ([]splitPlan, error) {
	dest := filepath.Join(cache, "urls", filepath.Base(d.URL))
	opts.log.Info("downloading", "dataset", d.Name, "url", d.URL)
	if err := c.FetchURL(ctx, d.URL, dest, opts.progress); err != nil {
		return nil, fmt.Errorf("download %s: %w", d.Name, err)
	}
	if d.CharSplits == nil {
		var plan []splitPlan
		for ours := range d.Splits {
			plan = append(plan, splitPlan{split: ours, files: []string{dest}, column: d.TextColumn})
		}
		return plan, nil
	}
	text, err := readZipText(dest)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", d.Name, err)
	}
	chunk := opts.ChunkChars
	if chunk <= 0 {
		chunk = 256
	}
	dir := filepath.Join(cache, "urls", d.Name+fmt.Sprintf("-chunks%d", chunk))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var plan []splitPlan
	for _, split := range []string{"train", "valid", "test"} {
		r, ok := d.CharSplits[split]
		if !ok {
			continue
		}
		lo, hi := r[0], r[1]
		if hi < 0 || hi > len(text) {
			hi = len(text)
		}
		if lo > len(text) {
			lo = len(text)
		}
		size := chunk
		if split == "train" && d.Name == "text8-crop" {
			size = 2 * chunk
		}
		var docs []datasets.TextRow
		for i := lo; i+size <= hi; i += size {
			docs = append(docs, datasets.TextRow{ID: int64(len(docs)), Text: text[i : i+size]})
		}
		path := filepath.Join(dir, split+".parquet")
		if err := datasets.WriteParquet(path, docs, 8192); err != nil {
			return nil, err
		}
		plan = append(plan, splitPlan{split: split, files: []string{path}, column: "text"})
	}
	return plan, nil
}

// readZipText returns the first file of a zip archive as text.
func readZipText(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	if len(zr.File) == 0 {
		return "", fmt.Errorf("%s: empty zip archive", path)
	}
	f, err := zr.File[0].Open()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return string(data), nil
}

// publishedSplits are the splits a dataset's artifact holds: its Keep list, or
// its source splits (hub or character ranges) plus valid when a hold-out makes
// one, sorted.
func publishedSplits(d datasets.Dataset) []string {
	if d.Keep != nil {
		return slices.Sorted(slices.Values(d.Keep))
	}
	set := map[string]bool{}
	for s := range d.Splits {
		set[s] = true
	}
	for s := range d.CharSplits {
		set[s] = true
	}
	if d.HoldOut > 0 {
		set["valid"] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// checkSplits refuses a --splits entry the dataset does not publish.
func checkSplits(d datasets.Dataset, want []string) error {
	have := publishedSplits(d)
	for _, s := range want {
		if !slices.Contains(have, s) {
			return fmt.Errorf("download %s: --splits: %q is not one of its splits (%s)", d.Name, s, strings.Join(have, ", "))
		}
	}
	return nil
}

// neededSplit reports whether source split ours must be read for the splits
// wanted (all when none are named): a wanted split itself, or train when its
// hold-out makes the wanted valid split.
func neededSplit(d datasets.Dataset, ours string, want []string) bool {
	if len(want) == 0 || slices.Contains(want, ours) {
		return true
	}
	return ours == "train" && d.HoldOut > 0 && slices.Contains(want, "valid")
}

// restrictPlan drops the source splits not needed for want and limits what
// every remaining one publishes to want (within the dataset's own Keep).
func restrictPlan(plan []splitPlan, d datasets.Dataset, want []string) []splitPlan {
	if len(want) == 0 {
		return plan
	}
	var out []splitPlan
	for _, p := range plan {
		if !neededSplit(d, p.split, want) {
			continue
		}
		keep := slices.Clone(want)
		if p.keep != nil {
			keep = slices.DeleteFunc(keep, func(s string) bool { return !slices.Contains(p.keep, s) })
		}
		p.keep = keep
		out = append(out, p)
	}
	return out
}
