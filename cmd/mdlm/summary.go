package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/pipeline"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// summarize prints what a finished pipeline's outputs say, by artifact type:
// perplexities of metrics/v1, the first samples of samples/v1, the loss curve
// of checkpoint/v1.
func summarize(w io.Writer, f *pipeline.File, ds []pipeline.Decision) {
	var corpus *wordIndex // the train split's words, for the samples' word share
	if hasOutput(f, ds, artifact.SamplesType) {
		for _, d := range ds {
			if st := f.Stages[d.Stage]; st != nil && st.Spec.Output == artifact.TextType && corpus == nil {
				corpus = corpusIndex(d.Out)
			}
		}
	}
	for _, d := range ds {
		st := f.Stages[d.Stage]
		if st == nil {
			continue
		}
		switch st.Spec.Output {
		case artifact.MetricsType:
			summarizeMetrics(w, d)
		case artifact.SamplesType:
			summarizeSamples(w, d, 4, corpus)
		case artifact.CheckpointType:
			if _, err := os.Stat(filepath.Join(d.Out, "loss.png")); err == nil {
				fmt.Fprintf(w, "--- %s: loss curve %s\n", d.Stage, filepath.Join(d.Out, "loss.png"))
			}
		}
	}
}

// hasOutput says whether a stage of ds writes the artifact type typ.
func hasOutput(f *pipeline.File, ds []pipeline.Decision, typ string) bool {
	for _, d := range ds {
		if st := f.Stages[d.Stage]; st != nil && st.Spec.Output == typ {
			return true
		}
	}
	return false
}

func summarizeMetrics(w io.Writer, d pipeline.Decision) {
	raw, err := os.ReadFile(filepath.Join(d.Out, evaluate.MetricsJSON))
	if err != nil {
		return
	}
	var m struct {
		evaluate.Perplexity
		GenPPL  *float64 `json:"gen_ppl"`
		Scored  int      `json:"scored_samples"`
		Entropy float64  `json:"entropy"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	if m.GenPPL != nil {
		fmt.Fprintf(w, "--- %s: generative perplexity %.3f over %d samples; mean sample entropy %.3f nats\n",
			d.Stage, *m.GenPPL, m.Scored, m.Entropy)
		return
	}
	bpb := ""
	if n, all, err := evaluatedBytes(d, m.Split, m.Blocks); err == nil && n > 0 {
		about := ""
		if !all {
			about = "about "
		}
		bpb = fmt.Sprintf(", %.4f bits/byte over %s%d bytes", bitsPerByte(m.NLL, m.Tokens, n), about, n)
	}
	fmt.Fprintf(w, "--- %s: %s perplexity %.3f (NELBO bound, %.4f nats/token over %d tokens%s); unigram perplexity %.3f\n",
		d.Stage, m.Split, m.PPL, m.NLL, int64(m.Tokens), bpb, m.UnigramPPL)
}

// bitsPerByte converts a per-token bound to bits per byte of text: the total
// nats (natsPerToken × tokens) over the bytes those tokens spell, in bits. It
// compares models whose tokenizers differ (docs/architecture.md: the demo).
func bitsPerByte(natsPerToken, tokens float64, bytes int64) float64 {
	return natsPerToken * tokens / (float64(bytes) * math.Ln2)
}

// Bounds on what the summary reads: a large run's summary estimates rather
// than reading its whole data.
const (
	maxSummaryBlocks     = 8192     // blocks decoded for bits per byte; beyond, scaled
	maxSummaryIndexBytes = 64 << 20 // corpus text indexed for the word share
)

// evaluatedBytes is the number of text bytes in the first blocks of the split
// an eval stage read (its --data artifact): each block's ids, special tokens
// (BOS, EOS, PAD, mask) and padded positions left out, decoded by the
// artifact's tokenizer. Past maxSummaryBlocks blocks it scales the count of
// the first ones (all is false).
func evaluatedBytes(d pipeline.Decision, split string, blocks int) (n int64, all bool, err error) {
	dir := flagValue(d.Args, "--data")
	if dir == "" {
		return 0, false, fmt.Errorf("%s: no --data", d.Stage)
	}
	_, meta, err := artifact.Open[artifact.PackedMeta](dir)
	if err != nil {
		return 0, false, err
	}
	tokName, err := artifact.ResolveTokenizer(dir, meta.Tokenizer)
	if err != nil {
		return 0, false, err
	}
	tok, err := tokenizer.Load(tokName)
	if err != nil {
		return 0, false, err
	}
	p, err := datasets.OpenPackedSplit(dir, split, meta)
	if err != nil {
		return 0, false, err
	}
	defer p.Close()
	blocks = min(blocks, p.NumRows())
	read := min(blocks, maxSummaryBlocks)
	n, err = decodedBytes(p, tok, meta, read)
	if err != nil || read == 0 {
		return 0, false, err
	}
	return n * int64(blocks) / int64(read), read == blocks, nil
}

// decodedBytes sums the decoded length of the first n blocks of p.
func decodedBytes(p *datasets.PackedArrow, tok tokenizer.Tokenizer, meta artifact.PackedMeta, blocks int) (int64, error) {
	special := map[int32]bool{int32(meta.BOS): true, int32(meta.EOS): true, int32(meta.PAD): true, int32(meta.MaskIndex): true}
	var n int64
	var text []int
	for i := range blocks {
		ids, mask := p.Row(i)
		text = text[:0]
		for j, id := range ids {
			if !special[id] && (mask == nil || mask[j] != 0) {
				text = append(text, int(id))
			}
		}
		s, err := tok.Decode(text)
		if err != nil {
			return 0, fmt.Errorf("%s block %d: %w", p.Path(), i, err)
		}
		n += int64(len(s))
	}
	return n, nil
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// wordIndex holds the words of a corpus and its adjacent word pairs (words:
// maximal runs of letters and apostrophes, lower-cased), to say how much of a
// sample is made of the corpus's words.
type wordIndex struct {
	words map[string]string // each word to the index's own copy of it
	pairs map[[2]string]bool
}

func newWordIndex() *wordIndex {
	return &wordIndex{words: map[string]string{}, pairs: map[[2]string]bool{}}
}

// splitWords returns the lower-cased words of s.
func splitWords(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' })
}

// add indexes the words and adjacent pairs of one document. The keys are the
// index's own copies: a word is a substring of doc (or of its lower-cased
// copy), and a map assignment to a key already there stores the key given, so
// indexing doc's own words would keep every document alive.
func (x *wordIndex) add(doc string) {
	var prev string
	for i, w := range splitWords(doc) {
		own, ok := x.words[w]
		if !ok {
			own = strings.Clone(w)
			x.words[own] = own
		}
		if i > 0 {
			x.pairs[[2]string{prev, own}] = true
		}
		prev = own
	}
}

// wordShare counts the words of text and those in the index, and likewise
// its adjacent word pairs.
type wordShare struct{ Words, KnownWords, Pairs, KnownPairs int }

func (x *wordIndex) share(text string) wordShare {
	var s wordShare
	ws := splitWords(text)
	for i, w := range ws {
		s.Words++
		if _, ok := x.words[w]; ok {
			s.KnownWords++
		}
		if i > 0 {
			s.Pairs++
			if x.pairs[[2]string{ws[i-1], w}] {
				s.KnownPairs++
			}
		}
	}
	return s
}

// errIndexFull stops corpusIndex's scan at maxSummaryIndexBytes.
var errIndexFull = errors.New("index full")

// corpusIndex indexes the train split of a text/v1 artifact, its first
// maxSummaryIndexBytes of text at most; nil if unreadable.
func corpusIndex(dir string) *wordIndex {
	shards, err := datasets.Shards(dir, "train")
	if err != nil || len(shards) == 0 {
		return nil
	}
	x, size := newWordIndex(), 0
	for _, sh := range shards {
		err := datasets.ScanTexts(sh, func(texts []string) error {
			for _, text := range texts {
				if size += len(text); size > maxSummaryIndexBytes {
					return errIndexFull
				}
				x.add(text)
			}
			return nil
		})
		if errors.Is(err, errIndexFull) {
			return x
		}
		if err != nil {
			return nil
		}
	}
	return x
}

func summarizeSamples(w io.Writer, d pipeline.Decision, n int, corpus *wordIndex) {
	rows, err := datasets.ReadSamples(d.Out)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "--- %s: %d samples (%s)\n", d.Stage, len(rows), filepath.Join(d.Out, datasets.SamplesJSONL))
	if corpus != nil {
		var t wordShare
		for _, r := range rows {
			s := corpus.share(r.Text)
			t.Words, t.KnownWords, t.Pairs, t.KnownPairs = t.Words+s.Words, t.KnownWords+s.KnownWords, t.Pairs+s.Pairs, t.KnownPairs+s.KnownPairs
		}
		if t.Words > 0 && t.Pairs > 0 {
			fmt.Fprintf(w, "    words in the corpus: %.1f%% of %d; adjacent word pairs: %.1f%% of %d\n",
				100*float64(t.KnownWords)/float64(t.Words), t.Words, 100*float64(t.KnownPairs)/float64(t.Pairs), t.Pairs)
		}
	}
	for i, r := range rows {
		if i == n {
			fmt.Fprintf(w, "    ... %d more\n", len(rows)-n)
			break
		}
		text := r.Text
		if text == "" {
			text = fmt.Sprint(r.Tokens)
		}
		fmt.Fprintf(w, "[%d] NFE %d: %s\n", r.Index, r.NFE, strings.ReplaceAll(text, "\n", " "))
	}
}
