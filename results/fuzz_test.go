package results

import (
	"encoding/json"
	"testing"
)

// FuzzParseMetrics: any metrics.json decodes or errors, without panics, with
// the numbers kept as their exact text.
func FuzzParseMetrics(f *testing.F) {
	f.Add([]byte(`{"ppl": 4238.634719774924, "nll": 8.35, "split": "valid", "ema": true}`))
	f.Add([]byte(`{"a": {"b": {"c": 1e400}}}`))
	f.Add([]byte(`{"a": [1, 2], "b": null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, info, err := ParseMetrics(raw)
		if err != nil {
			return
		}
		for k, v := range m {
			if _, dup := info[k]; dup {
				t.Fatalf("%q both a number and a string", k)
			}
			if !json.Valid([]byte(v.String())) {
				t.Fatalf("%q: %q is not a JSON number", k, v)
			}
		}
	})
}

// FuzzParseCurve: any metrics.jsonl decodes or errors, never keeping more
// than MaxCurvePoints records.
func FuzzParseCurve(f *testing.F) {
	f.Add([]byte("{\"step\":1,\"loss\":5.5,\"lr\":0.0003}\n{\"step\":4,\"val_ppl\":4416.2}\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte("{\"step\":1}\n{"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		pts, err := ParseCurve(raw)
		if err == nil && len(pts) > MaxCurvePoints {
			t.Fatalf("%d points", len(pts))
		}
		for _, p := range pts {
			for k, v := range p {
				if !json.Valid([]byte(v.String())) {
					t.Fatalf("%q: %q is not a JSON number", k, v)
				}
			}
		}
	})
}

// FuzzParseLock: any lock file (it may come from any git revision) decodes
// or errors, and the inherited params of every stage are computed without
// endless recursion.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte(`{"a":{"digest":"d1","params":{"x":"1"},"inputs":{}},"b":{"digest":"d2","params":{"y":2},"inputs":{"in":"d1"}}}`))
	f.Add([]byte(`{"a":{"digest":"d","inputs":{"self":"d"}}}`))
	f.Add([]byte(`{"a":{"digest":"d1","inputs":{"i":"d2"}},"b":{"digest":"d2","inputs":{"i":"d1"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		lock, err := ParseLock("fuzz.lock.json", raw)
		if err != nil {
			return
		}
		for s := range lock {
			lock.Params(s)
		}
		Diff(lock, Lock{}, nil, nil)
	})
}
