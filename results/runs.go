package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/train"
)

// WorkSuffix names a training run in progress beside its output
// (stages/train: "<out>.work").
const WorkSuffix = ".work"

// RunningWithin: a .work run whose metrics.jsonl changed this recently is
// shown as running; older ones as stopped (interrupted or failed).
const RunningWithin = 2 * time.Minute

// Run is one training run's curves.
type Run struct {
	ID     string                   `json:"id"` // its directory, relative to the cache
	Stage  string                   `json:"stage"`
	State  string                   `json:"state"` // done, running, stopped
	Digest string                   `json:"digest,omitempty"`
	Params map[string]string        `json:"params,omitempty"`
	Points []map[string]json.Number `json:"points"` // metrics.jsonl records, numbers as written
}

// Runs reads the curves of every checkpoint/v1 artifact and .work run in root.
func Runs(root *Root, now time.Time, log *slog.Logger) ([]Run, error) {
	names, err := root.Entries()
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, name := range names {
		r, ok, err := readRun(root, name, now)
		if err != nil {
			log.Warn("skipping a training run", "dir", root.abs(name), "err", err)
		}
		if ok {
			runs = append(runs, r)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
	return runs, nil
}

func readRun(root *Root, name string, now time.Time) (Run, bool, error) {
	if strings.HasSuffix(name, WorkSuffix) {
		rel := path.Join(name, train.MetricsFile)
		fi, err := root.Stat(rel)
		if err != nil {
			return Run{}, false, nil
		}
		raw, err := root.ReadFile(rel, MaxCurveBytes)
		if err != nil {
			return Run{}, false, err
		}
		state := "stopped"
		if now.Sub(fi.ModTime()) < RunningWithin {
			state = "running"
		}
		pts, err := ParseCurve(raw)
		if err != nil {
			return Run{}, false, fmt.Errorf("%s: %w", root.abs(rel), err)
		}
		return Run{ID: name, Stage: StageOfDir(strings.TrimSuffix(name, WorkSuffix)), State: state, Points: pts}, true, nil
	}
	m, err := root.Manifest(name)
	if err != nil || m.Type != artifact.CheckpointType {
		return Run{}, false, nil
	}
	raw, err := root.ArtifactFile(name, m, train.MetricsFile, MaxCurveBytes)
	if err != nil {
		return Run{}, false, err
	}
	pts, err := ParseCurve(raw)
	if err != nil {
		return Run{}, false, fmt.Errorf("%s: %w", root.abs(path.Join(name, train.MetricsFile)), err)
	}
	return Run{ID: name, Stage: StageOfDir(name), State: "done", Digest: m.Digest(), Params: stringParams(m.Params), Points: pts}, true, nil
}

// ParseCurve decodes metrics.jsonl: one object per line, numeric fields kept
// with their exact text; at most MaxCurvePoints records (the last ones).
func ParseCurve(raw []byte) ([]map[string]json.Number, error) {
	var pts []map[string]json.Number
	err := lines(raw, MaxCurveLine, func(n int, line []byte) error {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		p := map[string]json.Number{}
		for k, v := range obj {
			if num, ok := v.(json.Number); ok {
				p[k] = num
			}
		}
		pts = append(pts, p)
		if len(pts) > 2*MaxCurvePoints {
			pts = append(pts[:0], pts[len(pts)-MaxCurvePoints:]...)
		}
		return nil
	})
	if len(pts) > MaxCurvePoints {
		pts = pts[len(pts)-MaxCurvePoints:]
	}
	return pts, err
}

// Samples is one samples/v1 artifact's rows and how they were made.
type Samples struct {
	ID         string            `json:"id"`
	Stage      string            `json:"stage"`
	Digest     string            `json:"digest"`
	Params     map[string]string `json:"params,omitempty"` // sampler, steps, seed, ...
	Checkpoint string            `json:"checkpoint"`       // the model input's digest
	Model      string            `json:"model,omitempty"`  // the cache entry holding that checkpoint
	Rows       []SampleRow       `json:"rows"`
	Truncated  bool              `json:"truncated,omitempty"`
}

// SampleRow is one line of samples.jsonl (tokens left out).
type SampleRow struct {
	Index int64  `json:"index"`
	NFE   int32  `json:"nfe"`
	Text  string `json:"text"`
}

// AllSamples reads every samples/v1 artifact in root (MaxSamples rows each).
func AllSamples(root *Root, log *slog.Logger) ([]Samples, error) {
	names, err := root.Entries()
	if err != nil {
		return nil, err
	}
	models := map[string]string{}
	var found []Samples
	for _, name := range names {
		m, err := root.Manifest(name)
		if err != nil {
			continue
		}
		switch m.Type {
		case artifact.CheckpointType:
			models[m.Digest()] = name
		case artifact.SamplesType:
			s, err := readSamples(root, name, m)
			if err != nil {
				log.Warn("skipping samples", "dir", root.abs(name), "err", err)
				continue
			}
			found = append(found, s)
		}
	}
	for i := range found {
		found[i].Model = models[found[i].Checkpoint]
	}
	return found, nil
}

const samplesJSONL = "samples.jsonl"

func readSamples(root *Root, name string, m artifact.Manifest) (Samples, error) {
	raw, err := root.ArtifactFile(name, m, samplesJSONL, MaxSamplesBytes)
	if err != nil {
		return Samples{}, err
	}
	s := Samples{ID: name, Stage: StageOfDir(name), Digest: m.Digest(), Params: stringParams(m.Params), Checkpoint: m.Inputs["model"]}
	err = lines(raw, int(MaxSamplesBytes), func(n int, line []byte) error {
		if len(s.Rows) >= MaxSamples {
			s.Truncated = true
			return nil
		}
		var r SampleRow
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("%s line %d: %w", samplesJSONL, n, err)
		}
		s.Rows = append(s.Rows, r)
		return nil
	})
	return s, err
}
