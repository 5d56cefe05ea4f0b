package tokenizer

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTrainBPEKJV trains the demo's vocabulary (4096 ids) on the KJV
// corpus (testdata/kjv, 4 MB): counting, then merging.
func BenchmarkTrainBPEKJV(b *testing.B) {
	var docs []string
	for i, line := range readGzipLines(b, filepath.Join("..", "testdata", "kjv", "kjv.jsonl.gz")) {
		var d struct{ Text string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			b.Fatalf("kjv line %d: %v", i+1, err)
		}
		docs = append(docs, d.Text)
	}
	for b.Loop() {
		t0 := time.Now()
		wc := NewWordCounts(nil)
		wc.Add(docs, 0)
		t1 := time.Now()
		if _, err := TrainBPE(wc, TrainConfig{VocabSize: 4096, Special: []string{"<|endoftext|>"}}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(t1.Sub(t0).Seconds(), "count-s")
		b.ReportMetric(time.Since(t1).Seconds(), "merge-s")
	}
}
