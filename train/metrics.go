package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// MetricsFile is the run directory's metrics log, one JSON Metrics per line.
const MetricsFile = "metrics.jsonl"

// Metrics is one line of metrics.jsonl: a training step's record (Loss and the
// fields after it up to TokensPerSec) or a validation's (the Val fields).
type Metrics struct {
	Step         int     `json:"step"`
	Loss         float64 `json:"loss,omitempty"`
	LR           float64 `json:"lr,omitempty"`
	GradNorm     float64 `json:"grad_norm,omitempty"`
	TokensPerSec float64 `json:"tokens_per_sec,omitempty"`
	ValNLL       float64 `json:"val_nll,omitempty"`
	ValPPL       float64 `json:"val_ppl,omitempty"`
	ValGenPPL    float64 `json:"val_gen_ppl,omitempty"` // generative perplexity of samples (Config.GenPPLScorer)
	ValEntropy   float64 `json:"val_entropy,omitempty"` // their mean unigram entropy
}

// ReadMetrics reads a run's metrics log in order (a step redone after a crash
// appears twice; the later line is the one that counts).
func ReadMetrics(run string) ([]Metrics, error) {
	f, err := os.Open(filepath.Join(run, MetricsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Metrics
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var m Metrics
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.Name(), line, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// Losses maps each step to its training loss, the last record winning.
func Losses(ms []Metrics) map[int]float64 {
	out := map[int]float64{}
	for _, m := range ms {
		if m.Loss != 0 {
			out[m.Step] = m.Loss
		}
	}
	return out
}

// Reproducible is the metrics a rerun reproduces exactly: for each step the
// last training record and the last validation record (a step redone after a
// crash appears once), in step order, without throughput.
func Reproducible(ms []Metrics) []Metrics {
	type key struct {
		step int
		val  bool
	}
	last := map[key]Metrics{}
	var order []key
	for _, m := range ms {
		k := key{m.Step, m.ValPPL != 0}
		if _, seen := last[k]; !seen {
			order = append(order, k)
		}
		m.TokensPerSec = 0
		last[k] = m
	}
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].step != order[j].step {
			return order[i].step < order[j].step
		}
		return !order[i].val && order[j].val
	})
	out := make([]Metrics, len(order))
	for i, k := range order {
		out[i] = last[k]
	}
	return out
}

// WriteMetrics writes ms as JSON lines to path (atomically).
func WriteMetrics(path string, ms []Metrics) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, m := range ms {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	})
}
