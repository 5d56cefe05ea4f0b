package results

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Change is what differs for one stage between two lock files (an older
// revision's and the current one).
type Change struct {
	Stage   string    `json:"stage"`
	What    string    `json:"what"` // added, removed, changed
	Params  []Delta   `json:"params,omitempty"`
	Metrics []Delta   `json:"metrics,omitempty"`
	Inputs  []string  `json:"inputs,omitempty"` // inputs whose digest changed
	Digest  [2]string `json:"digest"`
}

// Delta is one named value before and after ("" where absent).
type Delta struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Diff compares two locks stage by stage: params (own and inherited), input
// digests, output digest, and the metrics of metrics/v1 outputs found in the
// cache (old maps a stage to its row in the older revision, cur in this one).
func Diff(old, cur Lock, oldRows, curRows []Row) []Change {
	rowOf := func(rows []Row) map[string]Row {
		m := map[string]Row{}
		for _, r := range rows {
			m[r.Stage] = r
		}
		return m
	}
	or, cr := rowOf(oldRows), rowOf(curRows)
	names := map[string]bool{}
	for k := range old {
		names[k] = true
	}
	for k := range cur {
		names[k] = true
	}
	var out []Change
	for _, s := range sortedKeys(names) {
		o, inOld := old[s]
		c, inCur := cur[s]
		ch := Change{Stage: s, Digest: [2]string{o.Digest, c.Digest}}
		switch {
		case !inOld:
			ch.What = "added"
		case !inCur:
			ch.What = "removed"
		default:
			ch.What = "changed"
		}
		ch.Params = deltas(old.Params(s), cur.Params(s))
		ch.Metrics = deltas(numbers(or[s]), numbers(cr[s]))
		for _, in := range sortedKeys(union(o.Inputs, c.Inputs)) {
			if o.Inputs[in] != c.Inputs[in] && !strings.Contains(in, ":") {
				ch.Inputs = append(ch.Inputs, in)
			}
		}
		if ch.What == "changed" && o.Digest == c.Digest && len(ch.Params) == 0 && len(ch.Metrics) == 0 {
			continue
		}
		out = append(out, ch)
	}
	return out
}

func numbers(r Row) map[string]string {
	out := map[string]string{}
	for k, v := range r.Metrics {
		out[k] = v.String()
	}
	return out
}

func union(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func deltas(a, b map[string]string) []Delta {
	var out []Delta
	for _, k := range sortedKeys(union(a, b)) {
		if a[k] != b[k] {
			out = append(out, Delta{Name: k, Old: a[k], New: b[k]})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i].Name, ".") < strings.Count(out[j].Name, ".") })
	return out
}

// WriteDiff prints one line per changed stage, naming what changed.
func WriteDiff(w io.Writer, rev string, changes []Change) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintf(w, "no stage differs from %s\n", rev)
		return err
	}
	for _, c := range changes {
		parts := []string{}
		for _, d := range c.Params {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", d.Name, show(d.Old), show(d.New)))
		}
		if len(c.Inputs) > 0 {
			parts = append(parts, "inputs changed: "+strings.Join(c.Inputs, ", "))
		}
		for _, d := range c.Metrics {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", d.Name, show(d.Old), show(d.New)))
		}
		if c.Digest[0] != c.Digest[1] && c.What == "changed" {
			parts = append(parts, fmt.Sprintf("output %s -> %s", short(c.Digest[0]), short(c.Digest[1])))
		}
		line := strings.Join(clean(parts), "; ")
		if _, err := fmt.Fprintf(w, "%s (%s): %s\n", strings.Join(clean([]string{c.Stage}), ""), c.What, line); err != nil {
			return err
		}
	}
	return nil
}

func show(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if d == "" {
		return "(none)"
	}
	return d[:min(12, len(d))]
}
