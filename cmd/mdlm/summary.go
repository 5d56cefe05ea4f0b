package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/pipeline"
)

// summarize prints what a finished pipeline's outputs say, by artifact type:
// perplexities of metrics/v1, the first samples of samples/v1, the loss curve
// of checkpoint/v1.
func summarize(w io.Writer, f *pipeline.File, ds []pipeline.Decision) {
	for _, d := range ds {
		st := f.Stages[d.Stage]
		if st == nil {
			continue
		}
		switch st.Spec.Output {
		case artifact.MetricsType:
			summarizeMetrics(w, d)
		case artifact.SamplesType:
			summarizeSamples(w, d, 4)
		case artifact.CheckpointType:
			if _, err := os.Stat(filepath.Join(d.Out, "loss.png")); err == nil {
				fmt.Fprintf(w, "--- %s: loss curve %s\n", d.Stage, filepath.Join(d.Out, "loss.png"))
			}
		}
	}
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
	fmt.Fprintf(w, "--- %s: %s perplexity %.3f (NELBO bound, %.4f nats/token over %d tokens); unigram perplexity %.3f\n",
		d.Stage, m.Split, m.PPL, m.NLL, int64(m.Tokens), m.UnigramPPL)
}

func summarizeSamples(w io.Writer, d pipeline.Decision, n int) {
	rows, err := datasets.ReadSamples(d.Out)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "--- %s: %d samples (%s)\n", d.Stage, len(rows), filepath.Join(d.Out, datasets.SamplesJSONL))
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
