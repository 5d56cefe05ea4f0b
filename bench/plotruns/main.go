// Command plotruns draws the training loss and validation perplexity of several
// runs into one PNG (the README's DiT-vs-DiMamba figure):
//
//	plotruns -o docs/dit-vs-dimamba.png [NAME=]RUN_DIR...
//
// Each RUN_DIR is a train stage's output (or work directory) holding
// metrics.jsonl, optionally named for the legend as NAME=RUN_DIR; the runs are
// drawn in lossplot.Palette's order.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/internal/lossplot"
	"github.com/mdlm-go/mdlm/train"
)

func main() {
	out := flag.String("o", "runs.png", "PNG to write")
	flag.Parse()
	if flag.NArg() == 0 || flag.NArg() > len(lossplot.Palette) {
		fmt.Fprintf(os.Stderr, "plotruns: give 1 to %d run directories\n", len(lossplot.Palette))
		os.Exit(2)
	}
	var runs []lossplot.Run
	for i, arg := range flag.Args() {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok {
			name, dir = filepath.Base(arg), arg
		}
		ms, err := train.ReadMetrics(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "plotruns:", err)
			os.Exit(1)
		}
		runs = append(runs, train.PlotRun(ms, name, lossplot.Palette[i]))
	}
	if err := lossplot.Write(*out, runs); err != nil {
		fmt.Fprintln(os.Stderr, "plotruns:", err)
		os.Exit(1)
	}
}
