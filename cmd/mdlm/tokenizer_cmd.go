package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/atomicfile"
	"github.com/mdlm-go/mdlm/stages/traintok"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// maxTokenizerLine bounds one input line of `mdlm tokenizer encode/decode`.
const maxTokenizerLine = 64 << 20

// TokenizerCmd groups the tokenizer subcommands (issue 22).
type TokenizerCmd struct {
	Encode  TokenizerEncodeCmd  `cmd:"" help:"Encode documents from stdin (JSON Lines {\"text\": ...}, or plain lines with --lines): one line of space-separated ids per document."`
	Decode  TokenizerDecodeCmd  `cmd:"" help:"Decode lines of space-separated ids from stdin: one JSON Lines {\"text\": ...} per line (plain text with --lines)."`
	Inspect TokenizerInspectCmd `cmd:"" help:"Print a tokenizer's components, vocabulary size and special tokens."`
	Train   TokenizerTrainCmd   `cmd:"" help:"Learn a byte-level BPE tokenizer.json from text (a text/v1 artifact, .jsonl[.gz] or .txt files)."`
}

// TokenizerTrainCmd is `mdlm tokenizer train` (the train-tokenizer stage on files).
type TokenizerTrainCmd struct {
	Inputs       []string `arg:"" help:"text/v1 artifact directories (their train split), .parquet shards, JSON Lines {\"text\": ...} files (.jsonl, .jsonl.gz) or plain text files (a document a line)." type:"existingpath"`
	Out          string   `short:"o" required:"" help:"tokenizer.json to write." type:"path"`
	VocabSize    int      `default:"4096" help:"Vocabulary size: the special tokens, the 256 byte symbols, then merges (at most 1048576)."`
	Special      []string `default:"<|endoftext|>,[MASK]" help:"Special tokens, ids 0, 1, ..."`
	MinFrequency int64    `default:"2" help:"Never merge a pair seen fewer times."`
	Workers      int      `help:"Counting goroutines (default: all cores); never changes the result."`
}

// Run learns the tokenizer and writes it atomically.
func (c *TokenizerTrainCmd) Run(kctx *kong.Context) error {
	var files []string
	for _, in := range c.Inputs {
		st, err := os.Stat(in)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			files = append(files, in)
			continue
		}
		shards, err := datasets.Shards(in, "train")
		if err != nil || len(shards) == 0 {
			return fmt.Errorf("tokenizer train: %s: a directory without train-*.parquet shards (%v)", in, err)
		}
		files = append(files, shards...)
	}
	cfg := tokenizer.TrainConfig{VocabSize: c.VocabSize, Special: c.Special, MinFrequency: c.MinFrequency, Workers: c.Workers}
	start := time.Now()
	data, st, err := traintok.Train(context.Background(), files, cfg)
	if err != nil {
		return fmt.Errorf("tokenizer train: %w", err)
	}
	if err := atomicfile.Write(c.Out, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return fmt.Errorf("tokenizer train: -o %s: %w", c.Out, err)
	}
	slog.Info("tokenizer trained", "out", c.Out, "vocab", st.Vocab, "words", st.Words, "seconds", time.Since(start).Seconds())
	return nil
}

// TokenizerEncodeCmd is `mdlm tokenizer encode`.
type TokenizerEncodeCmd struct {
	Tokenizer string `required:"" help:"Built-in name (gpt2, bert-base-uncased, ...) or a tokenizer.json path."`
	Special   bool   `help:"Add the post-processor's special tokens (e.g. [CLS] ... [SEP]); without it, Hugging Face's encode(text, add_special_tokens=False)."`
	Lines     bool   `help:"Read plain text lines instead of JSON Lines."`
}

// TokenizerDecodeCmd is `mdlm tokenizer decode`.
type TokenizerDecodeCmd struct {
	Tokenizer string `required:"" help:"Built-in name or a tokenizer.json path."`
	Lines     bool   `help:"Write plain text lines instead of JSON Lines (a text holding a newline then spans lines)."`
}

// TokenizerInspectCmd is `mdlm tokenizer inspect`.
type TokenizerInspectCmd struct {
	Path string `arg:"" help:"Built-in name or a tokenizer.json path."`
	JSON bool   `name:"json" help:"Print JSON."`
}

// Run encodes stdin to stdout.
func (c *TokenizerEncodeCmd) Run(kctx *kong.Context) error {
	tok, err := tokenizer.Load(c.Tokenizer)
	if err != nil {
		return err
	}
	return encodeStream(tok, os.Stdin, kctx.Stdout, c.Lines, c.Special)
}

// Run decodes stdin to stdout.
func (c *TokenizerDecodeCmd) Run(kctx *kong.Context) error {
	tok, err := tokenizer.Load(c.Tokenizer)
	if err != nil {
		return err
	}
	return decodeStream(tok, os.Stdin, kctx.Stdout, c.Lines)
}

// Run prints the description.
func (c *TokenizerInspectCmd) Run(kctx *kong.Context) error {
	tok, err := tokenizer.Load(c.Path)
	if err != nil {
		return err
	}
	d := describe(tok)
	if c.JSON {
		enc := json.NewEncoder(kctx.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	return writeDescription(kctx.Stdout, d)
}

func describe(tok tokenizer.Tokenizer) tokenizer.Description {
	if h, ok := tok.(interface{ Describe() tokenizer.Description }); ok {
		return h.Describe()
	}
	return tokenizer.Description{Name: tok.Name(), Components: []tokenizer.Component{{Field: "model", Type: tok.Name()}},
		VocabSize: tok.VocabSize()}
}

func writeDescription(w io.Writer, d tokenizer.Description) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%-14s %s\n", "tokenizer", d.Name)
	for _, c := range d.Components {
		fmt.Fprintf(bw, "%-14s %s\n", c.Field, c.Type)
	}
	fmt.Fprintf(bw, "%-14s %d\n", "vocab size", d.VocabSize)
	fmt.Fprintf(bw, "%-14s %d\n", "special", len(d.Special))
	for _, s := range d.Special {
		fmt.Fprintf(bw, "  %d\t%q\n", s.ID, s.Content)
	}
	return bw.Flush()
}

func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxTokenizerLine)
	return sc
}

// encodeStream writes one line of ids per input document.
func encodeStream(tok tokenizer.Tokenizer, r io.Reader, w io.Writer, plain, special bool) error {
	encode := tok.Encode
	if special {
		s, ok := tok.(interface{ EncodeSpecial(string) []int })
		if !ok {
			return fmt.Errorf("tokenizer %s: --special: it has no post-processor", tok.Name())
		}
		encode = s.EncodeSpecial
	}
	sc := newLineScanner(r)
	bw := bufio.NewWriter(w)
	buf := make([]byte, 0, 4096)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if !plain {
			var doc struct {
				Text *string `json:"text"`
			}
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				return fmt.Errorf("stdin line %d: %w (JSON Lines {\"text\": ...} expected; --lines reads plain text)", line, err)
			}
			if doc.Text == nil {
				return fmt.Errorf("stdin line %d: no \"text\" field", line)
			}
			text = *doc.Text
		}
		buf = buf[:0]
		for i, id := range encode(text) {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendInt(buf, int64(id), 10)
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("stdout: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stdin: %w (lines are limited to %d bytes)", err, maxTokenizerLine)
	}
	return bw.Flush()
}

// decodeStream writes one text per input line of space-separated ids.
func decodeStream(tok tokenizer.Tokenizer, r io.Reader, w io.Writer, plain bool) error {
	sc := newLineScanner(r)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		ids := make([]int, len(fields))
		for i, f := range fields {
			id, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("stdin line %d, id %d: %q is not an integer", line, i+1, f)
			}
			ids[i] = id
		}
		text, err := tok.Decode(ids)
		if err != nil {
			return fmt.Errorf("stdin line %d: %w", line, err)
		}
		if plain {
			_, err = fmt.Fprintln(bw, text)
		} else {
			err = enc.Encode(struct {
				Text string `json:"text"`
			}{text})
		}
		if err != nil {
			return fmt.Errorf("stdout: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stdin: %w (lines are limited to %d bytes)", err, maxTokenizerLine)
	}
	return bw.Flush()
}
