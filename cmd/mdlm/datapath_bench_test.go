package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// BenchmarkTextToPacked runs the data path on a real corpus (the embedded KJV, or
// $MDLM_DATA_CORPUS): text/v1 -> tokens/v1 -> packed/v1 (GPT-2, wrap, L 1024) on
// all cores, and the tokenizer alone on the same documents and cores. It reports
// corpus MB/s for both and the share the tables (Parquet/Arrow reading and
// writing, packing, manifests) add to tokenization time.
func BenchmarkTextToPacked(b *testing.B) {
	corpus := os.Getenv("MDLM_DATA_CORPUS")
	if corpus == "" {
		corpus = filepath.Join("..", "..", "testdata", "kjv", "kjv.jsonl.gz")
	}
	ctx := context.Background()
	mdlm := func(args ...string) {
		if code := run(ctx, append(args, "--log-level=warn"), io.Discard, io.Discard); code != 0 {
			b.Fatalf("mdlm %v: exit %d", args, code)
		}
	}
	var docs []string
	size := 0
	if err := datasets.ReadDocs(corpus, "text", datasets.ByLine, func(s string) error {
		docs = append(docs, s)
		size += len(s)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	text := filepath.Join(dir, "text")
	mdlm("download", corpus, "-o", text)
	tok, _ := tokenizer.Load("gpt2")
	var tokTime, fullTime time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		tokenizer.BatchEncode(tok.(*tokenizer.HF).Clone(), docs, runtime.GOMAXPROCS(0))
		tokTime += time.Since(start)

		start = time.Now()
		tokens, packed := filepath.Join(dir, "tokens"), filepath.Join(dir, "packed")
		mdlm("tokenize", text, "--tokenizer", "gpt2", "-o", tokens)
		mdlm("pack", tokens, "--length", "1024", "-o", packed)
		fullTime += time.Since(start)
		os.RemoveAll(tokens)
		os.RemoveAll(packed)
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/fullTime.Seconds(), "MB/s_text_to_packed")
	b.ReportMetric(mb/tokTime.Seconds(), "MB/s_tokenizer_only")
	b.ReportMetric(100*(fullTime.Seconds()-tokTime.Seconds())/tokTime.Seconds(), "%_added_by_tables")
}
