// Package results gathers what a researcher compares across runs: every
// metrics/v1 artifact of some pipelines (through their lock files) or of a
// cache directory, as rows of stage, the parameters that differ between rows
// and the metrics by name (exactly as metrics.json writes them), plus the
// training curves (metrics.jsonl of checkpoint/v1 artifacts and of .work runs
// in progress) and the samples of samples/v1 artifacts. `mdlm show` prints
// the rows; `mdlm ui` (package webui) serves all of it.
//
// Every read goes through Root, confined to the cache directory, with the
// sizes bounded (see the constants in read.go).
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/pipeline"
)

// Row is one metrics/v1 artifact.
type Row struct {
	Pipeline string                 `json:"pipeline,omitempty"`
	Stage    string                 `json:"stage"`
	Kind     string                 `json:"kind,omitempty"` // the producing stage kind (eval, genppl)
	Params   map[string]string      `json:"params"`         // every parameter (Table.JSON keeps the differing ones)
	Metrics  map[string]json.Number `json:"metrics"`
	Info     map[string]string      `json:"info,omitempty"` // metrics.json's strings (split, parameterization)
	Digest   string                 `json:"digest"`         // the artifact's manifest digest
	Dir      string                 `json:"dir"`            // relative to the cache directory
}

// Table is the rows and the parameter names whose values differ between them.
type Table struct {
	Rows    []Row
	Varying []string
	Metrics []string // every metric name, in display order
}

// keySuffix is the engine's "-<first 16 hex of the cache key>" on an output
// directory's name (pipeline.Engine: <stage>-<key[:16]>).
var keySuffix = regexp.MustCompile(`-[0-9a-f]{16}$`)

// StageOfDir is the pipeline stage name of a cache entry.
func StageOfDir(name string) string { return keySuffix.ReplaceAllString(name, "") }

// FromCache reads every metrics/v1 artifact directly under root; entries
// that are not artifacts, or are broken, are skipped with a warning.
func FromCache(root *Root, log *slog.Logger) ([]Row, error) {
	names, err := root.Entries()
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, name := range names {
		m, err := root.Manifest(name)
		if err != nil {
			log.Debug("not an artifact", "dir", root.abs(name), "err", err)
			continue
		}
		if m.Type != artifact.MetricsType {
			continue
		}
		row, err := readRow(root, name, m)
		if err != nil {
			log.Warn("skipping a metrics artifact", "dir", root.abs(name), "err", err)
			continue
		}
		row.Stage = StageOfDir(name)
		row.Params = stringParams(m.Params)
		rows = append(rows, row)
	}
	return rows, nil
}

func readRow(root *Root, rel string, m artifact.Manifest) (Row, error) {
	raw, err := root.ArtifactFile(rel, m, evaluate.MetricsJSON, MaxMetricsBytes)
	if err != nil {
		return Row{}, err
	}
	metrics, info, err := ParseMetrics(raw)
	if err != nil {
		return Row{}, fmt.Errorf("%s: %w", root.abs(rel), err)
	}
	return Row{Kind: m.Stage, Metrics: metrics, Info: info, Digest: m.Digest(), Dir: rel}, nil
}

func stringParams(p map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range p {
		switch v.(type) {
		case map[string]any, []any:
			raw, _ := json.Marshal(v)
			out[k] = string(raw)
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// Lock is a pipeline's lock file: stage -> its last published output.
type Lock map[string]pipeline.LockEntry

// LockFile is where the engine keeps a pipeline's lock (pipeline/run.go lockPath).
func LockFile(pipelinePath string) string { return pipelinePath + ".lock.json" }

// ParseLock decodes a lock file's bytes (from disk or `git show`).
func ParseLock(name string, raw []byte) (Lock, error) {
	if len(raw) > MaxLockBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a lock file may have", name, len(raw), MaxLockBytes)
	}
	lock := Lock{}
	if err := json.Unmarshal(raw, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for stage := range lock {
		if stage == "" || len(stage) > 256 {
			return nil, fmt.Errorf("%s: a stage name is empty or longer than 256 bytes", name)
		}
	}
	return lock, nil
}

// ReadLock reads the lock file of the pipeline at pipelinePath.
func ReadLock(pipelinePath string) (Lock, error) {
	name := LockFile(pipelinePath)
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s has no lock file (run it first): %w", pipelinePath, err)
	}
	if fi.Size() > MaxLockBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d a lock file may have", name, fi.Size(), MaxLockBytes)
	}
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return ParseLock(name, raw)
}

// FromLock reads the metrics/v1 outputs the lock records (those still in the
// cache with the recorded digest). Params are the stage's own flags plus those
// of the stages feeding it, as "<input>.<flag>" (model.seed, model.data.length).
func FromLock(root *Root, pipelineName string, lock Lock, log *slog.Logger) []Row {
	var rows []Row
	for _, stage := range sortedKeys(lock) {
		row, err := lockRow(root, lock[stage])
		if errors.Is(err, errNotMetrics) {
			continue
		}
		if err != nil {
			log.Warn("skipping a stage's metrics", "pipeline", pipelineName, "stage", stage, "err", err)
			continue
		}
		row.Pipeline, row.Stage = pipelineName, stage
		row.Params = lock.Params(stage)
		rows = append(rows, row)
	}
	return rows
}

var errNotMetrics = errors.New("not a metrics/v1 artifact")

// lockRow reads the metrics/v1 output a lock entry records (errNotMetrics
// for another type), if it still has the recorded digest.
func lockRow(root *Root, e pipeline.LockEntry) (Row, error) {
	rel, err := root.Rel(e.Out)
	if err != nil {
		return Row{}, err
	}
	m, err := root.Manifest(rel)
	if err != nil {
		return Row{}, err
	}
	if m.Type != artifact.MetricsType {
		return Row{}, errNotMetrics
	}
	if e.Digest != "" && m.Digest() != e.Digest {
		return Row{}, fmt.Errorf("%s: digest %s, the lock file records %s (rebuilt since?)", e.Out, m.Digest(), e.Digest)
	}
	return readRow(root, rel, m)
}

// Params is a stage's flags and, prefixed by input name, the flags of the
// stages whose outputs it read (found by digest), MaxAncestry hops deep.
func (l Lock) Params(stage string) map[string]string {
	byDigest := map[string]string{}
	for _, name := range sortedKeys(l) { // the first name of a shared digest, always the same
		if d := l[name].Digest; d != "" && byDigest[d] == "" {
			byDigest[d] = name
		}
	}
	out := map[string]string{}
	budget := MaxAncestorVisits
	l.addParams(out, "", stage, byDigest, map[string]bool{}, 0, &budget)
	return out
}

// addParams walks the inputs depth first; budget bounds the stages visited
// in all (a lock file of many diamonds would otherwise take exponential time).
func (l Lock) addParams(out map[string]string, prefix, stage string, byDigest map[string]string, seen map[string]bool, depth int, budget *int) {
	if depth > MaxAncestry || seen[stage] || *budget <= 0 {
		return
	}
	*budget--
	seen[stage] = true
	defer delete(seen, stage)
	e := l[stage]
	for k, v := range stringParams(e.Params) {
		out[prefix+k] = v
	}
	for _, in := range sortedKeys(e.Inputs) {
		if from, ok := byDigest[e.Inputs[in]]; ok && !strings.Contains(in, ":") {
			l.addParams(out, prefix+in+".", from, byDigest, seen, depth+1, budget)
		}
	}
}

// NewTable sorts rows by pipeline and stage and finds the differing params.
func NewTable(rows []Row) Table {
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Pipeline != rows[j].Pipeline {
			return rows[i].Pipeline < rows[j].Pipeline
		}
		return rows[i].Stage < rows[j].Stage
	})
	return Table{Rows: rows, Varying: varying(rows), Metrics: metricNames(rows)}
}

// varying lists the params whose value (or presence) is not the same in every row.
func varying(rows []Row) []string {
	all := map[string]bool{}
	for _, r := range rows {
		for k := range r.Params {
			all[k] = true
		}
	}
	var out []string
	for k := range all {
		first, ok0 := rows[0].Params[k]
		for _, r := range rows[1:] {
			if v, ok := r.Params[k]; ok != ok0 || v != first {
				out = append(out, k)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// preferred orders the metrics this field reads first; others follow by name.
var preferred = []string{"ppl", "nll", "bpd", "bits_per_byte", "gen_ppl", "entropy", "tokens"}

func metricNames(rows []Row) []string {
	all := map[string]bool{}
	for _, r := range rows {
		for k := range r.Metrics {
			all[k] = true
		}
	}
	rank := func(k string) int {
		for i, p := range preferred {
			if k == p {
				return i
			}
		}
		return len(preferred)
	}
	names := sortedKeys(all)
	sort.SliceStable(names, func(i, j int) bool { return rank(names[i]) < rank(names[j]) })
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// DirOf is the absolute directory of a row.
func (r *Root) DirOf(row Row) string { return filepath.Join(r.Dir, filepath.FromSlash(row.Dir)) }
