package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// MetricsFile is the run directory's metrics log, one JSON Metrics per line.
const MetricsFile = "metrics.jsonl"

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
