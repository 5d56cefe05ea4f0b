// Command plotruns draws the training loss and validation perplexity of several
// runs into one PNG (bench/README.md and the README's DiT-vs-DiMamba figure):
//
//	plotruns -o docs/dit-vs-dimamba.png RUN_DIR...
//
// Each RUN_DIR is a train stage's output (or work directory) holding
// metrics.jsonl, optionally named for the legend as NAME=RUN_DIR; the runs are
// drawn in lossplot.Palette's order.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/internal/lossplot"
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
		r, err := readRun(filepath.Join(dir, "metrics.jsonl"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "plotruns:", err)
			os.Exit(1)
		}
		r.Color, r.Name = lossplot.Palette[i], name
		runs = append(runs, r)
	}
	if err := lossplot.Write(*out, runs); err != nil {
		fmt.Fprintln(os.Stderr, "plotruns:", err)
		os.Exit(1)
	}
}

func readRun(path string) (lossplot.Run, error) {
	var r lossplot.Run
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var m struct {
			Step   float64 `json:"step"`
			Loss   float64 `json:"loss"`
			ValPPL float64 `json:"val_ppl"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return r, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if m.Loss != 0 {
			r.Loss = append(r.Loss, lossplot.Point{Step: m.Step, Value: m.Loss})
		}
		if m.ValPPL != 0 {
			r.PPL = append(r.PPL, lossplot.Point{Step: m.Step, Value: m.ValPPL})
		}
	}
	return r, sc.Err()
}
