// Package traintok is the `mdlm train-tokenizer` stage: text/v1 -> tokenizer/v1.
// It learns a byte-level BPE (tokenizer.TrainBPE) on one split of the text and
// publishes tokenizer.json, which `tokenize` takes as its "tokenizer" input.
// ReadCorpus also serves `mdlm tokenizer train` on plain files.
package traintok

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/stage"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// FileName is the tokenizer file inside a tokenizer/v1 artifact.
const FileName = "tokenizer.json"

// Def declares the stage.
var Def = stage.Def{Kind: "train-tokenizer", Version: 1, Output: artifact.TokenizerType,
	Help:   "Learn a byte-level BPE tokenizer (tokenizer/v1: tokenizer.json) from a text/v1 split.",
	Inputs: []stage.Input{{Name: "text", Type: artifact.TextType}},
	New:    func() stage.Options { return &Options{} }, DataGC: true}

// Options are the stage's flags.
type Options struct {
	In           string   `arg:"" input:"text" stream:"" help:"text/v1 artifact." type:"existingdir"`
	Out          string   `short:"o" required:"" output:"" help:"tokenizer/v1 artifact directory to create." type:"path"`
	VocabSize    int      `default:"4096" help:"Vocabulary size: the special tokens, the 256 byte symbols, then merges."`
	Special      []string `default:"<|endoftext|>,[MASK]" help:"Special tokens, ids 0, 1, ... (MDLM uses <|endoftext|> as BOS/EOS and [MASK] as the mask)."`
	MinFrequency int64    `default:"2" help:"Never merge a pair seen fewer times."`
	Split        string   `default:"train" help:"Text split to learn from (never the held-out one)."`
	Workers      int      `help:"Counting goroutines (default: all cores)." cosmetic:""`
}

// Build learns the tokenizer and writes tokenizer.json into dirs.Out.
func (o *Options) Build(ctx context.Context, env *stage.Env, dirs stage.Dirs) (artifact.Manifest, error) {
	in, _, err := stage.OpenArtifact[artifact.TextMeta](o.In)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("train-tokenizer: %w", err)
	}
	shards, err := stage.InputShards(o.In, o.Split)
	if err != nil || len(shards) == 0 {
		return artifact.Manifest{}, fmt.Errorf("train-tokenizer: %s: no %q split shards (%v)", o.In, o.Split, err)
	}
	cfg := tokenizer.TrainConfig{VocabSize: o.VocabSize, Special: o.Special, MinFrequency: o.MinFrequency, Workers: o.Workers}
	data, st, err := Train(ctx, shards, cfg)
	if err != nil {
		return artifact.Manifest{}, fmt.Errorf("train-tokenizer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dirs.Out, FileName), data, 0o644); err != nil {
		return artifact.Manifest{}, fmt.Errorf("train-tokenizer: %w", err)
	}
	env.Logger().Info("tokenizer trained", "vocab", st.Vocab, "words", st.Words, "bytes", len(data))
	meta := artifact.TokenizerMeta{Model: "bpe-bytelevel", VocabSize: st.Vocab, Special: o.Special,
		MinFrequency: o.MinFrequency, Words: st.Words}
	return artifact.Manifest{Inputs: map[string]string{"text": in.Digest()}, Params: artifact.Params(meta)}, nil
}

// Train counts the words of the inputs (text/v1 parquet shards, JSON Lines
// {"text": ...} files, optionally gzipped, or plain text files, a document a
// line) and learns a BPE; it returns the tokenizer.json and its statistics.
// The file is checked by loading it back.
func Train(ctx context.Context, inputs []string, cfg tokenizer.TrainConfig) ([]byte, Stats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, Stats{}, err
	}
	wc := tokenizer.NewWordCounts(cfg.Special)
	for _, path := range inputs {
		if err := ReadCorpus(ctx, path, func(docs []string) { wc.Add(docs, cfg.Workers) }); err != nil {
			return nil, Stats{}, err
		}
	}
	if wc.Len() == 0 {
		return nil, Stats{}, fmt.Errorf("%s: no text", strings.Join(inputs, ", "))
	}
	m, err := tokenizer.TrainBPE(wc, cfg)
	if err != nil {
		return nil, Stats{}, err
	}
	data, err := m.JSON()
	if err != nil {
		return nil, Stats{}, err
	}
	tok, err := tokenizer.Parse(data, "trained tokenizer.json")
	if err != nil {
		return nil, Stats{}, fmt.Errorf("the learned tokenizer does not load: %w", err)
	}
	return data, Stats{Words: wc.Len(), Vocab: tok.VocabSize()}, nil
}

// Stats describe a learned tokenizer.
type Stats struct {
	Words int // distinct pre-tokens counted
	Vocab int // ids: below the requested size when the corpus ran out of pairs
}

// Limits of ReadCorpus.
const (
	// MaxDocBytes caps one document (a line of a .jsonl or .txt file), as
	// `mdlm tokenizer encode` caps a line.
	MaxDocBytes = 64 << 20
	// batchBytes is the text handed to the counters at once.
	batchBytes = 8 << 20
)

// ReadCorpus calls fn with batches of the documents of path: a text/v1 shard
// (.parquet), JSON Lines with a "text" field (.jsonl, .jsonl.gz, .json.gz) or
// plain text (anything else; one document a line, its newline kept).
func ReadCorpus(ctx context.Context, path string, fn func([]string)) error {
	var batch []string
	size := 0
	add := func(s string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, size = append(batch, s), size+len(s)
		if size >= batchBytes {
			fn(batch)
			batch, size = nil, 0
		}
		return nil
	}
	var err error
	if strings.HasSuffix(path, ".parquet") {
		// A shard streamed from a bucket is verified before Train returns
		// (stage.ScanInput), so nothing is written from a damaged one.
		err = stage.ScanInput(path, func(in stage.InputFile) error {
			return datasets.ScanTextsAt(in, in.Size(), in.Name(), func(texts []string) error {
				for _, s := range texts { // each batch in its own storage: kept as it is
					if err := add(s); err != nil {
						return err
					}
				}
				return nil
			})
		})
	} else {
		err = readLines(path, add)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(batch) > 0 {
		fn(batch)
	}
	return nil
}

// readLines reads a JSON Lines or plain text file, gzipped if it ends in .gz.
func readLines(path string, add func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	name := path
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		defer zr.Close()
		r, name = zr, strings.TrimSuffix(name, ".gz")
	}
	jsonl := strings.HasSuffix(name, ".jsonl") || strings.HasSuffix(name, ".json")
	br := bufio.NewReaderSize(r, 1<<20)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if jsonl {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var d struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal([]byte(line), &d); err != nil || d.Text == nil {
				return fmt.Errorf("line %d: not a JSON object with a \"text\" string (%v)", n, err)
			}
			line = *d.Text
		}
		if err := add(line); err != nil {
			return err
		}
	}
}

// readLine returns the next line, its newline kept, refusing one over MaxDocBytes.
func readLine(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if sb.Len()+len(chunk) > MaxDocBytes {
			return "", fmt.Errorf("over the %d-byte limit for a document", MaxDocBytes)
		}
		sb.Write(chunk)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && sb.Len() > 0 {
			return sb.String(), nil
		}
		if err != nil {
			return "", err
		}
		return sb.String(), nil
	}
}
