// Command tokbench measures tokenizer throughput on one corpus, single-threaded
// unless asked otherwise: mdlm's GPT-2 and BERT tokenizers, each family's
// tokenizer.json given as name=path arguments, mdlm's batch encoder at 1..N
// workers, and github.com/tiktoken-go/tokenizer (r50k_base = GPT-2), the
// fastest Go anchor. It prints one line per measurement: name, MB/s, allocs/MB.
// It lives in its own module so the anchor never becomes an mdlm dependency.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	tiktoken "github.com/tiktoken-go/tokenizer"

	"github.com/mdlm-go/mdlm/tokenizer"
)

func main() {
	corpus := flag.String("corpus", "", "text file")
	reps := flag.Int("reps", 3, "passes over the corpus (best one is reported)")
	flag.Parse()
	data, err := os.ReadFile(*corpus)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	docs := strings.SplitAfter(string(data), "\n\n")
	mb := float64(len(data)) / 1e6

	gpt2, _ := tokenizer.Load("gpt2")
	bert, _ := tokenizer.Load("bert-base-uncased")
	measure := func(name string, fn func()) {
		best := time.Duration(1 << 62)
		var allocs uint64
		for r := 0; r < *reps; r++ {
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			start := time.Now()
			fn()
			el := time.Since(start)
			runtime.ReadMemStats(&m1)
			if el < best {
				best, allocs = el, m1.Mallocs-m0.Mallocs
			}
		}
		fmt.Printf("%-28s %8.2f MB/s %10.0f allocs/MB\n", name, mb/best.Seconds(), float64(allocs)/mb)
	}
	fresh := func(t tokenizer.Tokenizer) tokenizer.Tokenizer {
		return t.(interface{ Clone() tokenizer.Tokenizer }).Clone() // cold cache every pass
	}
	measure("mdlm-gpt2", func() {
		t := fresh(gpt2)
		for _, d := range docs {
			t.Encode(d)
		}
	})
	measure("mdlm-bert", func() {
		t := fresh(bert)
		for _, d := range docs {
			t.Encode(d)
		}
	})
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "tokbench: argument %q: want name=tokenizer.json\n", arg)
			os.Exit(2)
		}
		tok, err := tokenizer.LoadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		measure("mdlm-"+name, func() {
			t := fresh(tok)
			for _, d := range docs {
				t.Encode(d)
			}
		})
		measure("mdlm-"+name+"-batch-2workers", func() { tokenizer.BatchEncode(fresh(tok), docs, 2) })
	}
	for w := 1; w <= runtime.NumCPU(); w *= 2 {
		measure(fmt.Sprintf("mdlm-gpt2-batch-%dworkers", w), func() { tokenizer.BatchEncode(fresh(gpt2), docs, w) })
	}
	codec, err := tiktoken.Get(tiktoken.R50kBase)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	measure("tiktoken-go-r50k", func() {
		for _, d := range docs {
			codec.Encode(d)
		}
	})
}
