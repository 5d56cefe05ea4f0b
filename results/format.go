package results

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// JSONRow is one element of `mdlm show --json`: the params that differ
// between rows only, the metrics exactly as metrics.json holds them.
type JSONRow struct {
	Pipeline string                 `json:"pipeline,omitempty"`
	Stage    string                 `json:"stage"`
	Params   map[string]string      `json:"params"`
	Metrics  map[string]json.Number `json:"metrics"`
	Info     map[string]string      `json:"info,omitempty"`
	Digest   string                 `json:"digest"`
	Dir      string                 `json:"dir"`
}

// JSONRows is the table as JSON rows.
func (t Table) JSONRows() []JSONRow {
	out := make([]JSONRow, 0, len(t.Rows))
	for _, r := range t.Rows {
		params := map[string]string{}
		for _, k := range t.Varying {
			if v, ok := r.Params[k]; ok {
				params[k] = v
			}
		}
		out = append(out, JSONRow{Pipeline: r.Pipeline, Stage: r.Stage, Params: params, Metrics: r.Metrics,
			Info: r.Info, Digest: r.Digest, Dir: r.Dir})
	}
	return out
}

// WriteJSON writes the table as a JSON array.
func (t Table) WriteJSON(w io.Writer) error {
	raw, err := json.MarshalIndent(t.JSONRows(), "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// header and cells are the table's columns: pipeline (when several), stage,
// the differing params, the metrics, the digest (short).
func (t Table) header() []string {
	h := []string{}
	if t.pipelines() {
		h = append(h, "pipeline")
	}
	h = append(h, "stage")
	h = append(h, t.Varying...)
	h = append(h, t.Metrics...)
	return append(h, "digest")
}

func (t Table) cells(r Row, shortDigest bool) []string {
	c := []string{}
	if t.pipelines() {
		c = append(c, r.Pipeline)
	}
	c = append(c, r.Stage)
	for _, k := range t.Varying {
		c = append(c, r.Params[k])
	}
	for _, k := range t.Metrics {
		c = append(c, r.Metrics[k].String())
	}
	d := r.Digest
	if shortDigest {
		d = strings.TrimPrefix(d, "sha256:")
		d = d[:min(12, len(d))]
	}
	return append(c, d)
}

func (t Table) pipelines() bool {
	for _, r := range t.Rows {
		if r.Pipeline != t.Rows[0].Pipeline {
			return true
		}
	}
	return false
}

// WriteText writes an aligned plain-text table.
func (t Table) WriteText(w io.Writer) error {
	if len(t.Rows) == 0 {
		_, err := fmt.Fprintln(w, "no metrics/v1 artifacts found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header(), "\t"))
	for _, r := range t.Rows {
		fmt.Fprintln(tw, strings.Join(clean(t.cells(r, true)), "\t"))
	}
	return tw.Flush()
}

// WriteCSV writes RFC 4180 CSV with the full digest.
func (t Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(t.header())
	for _, r := range t.Rows {
		cw.Write(t.cells(r, false))
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown writes a GitHub-flavoured Markdown table.
func (t Table) WriteMarkdown(w io.Writer) error {
	h := t.header()
	fmt.Fprintf(w, "| %s |\n", strings.Join(h, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(h)))
	for _, r := range t.Rows {
		cells := clean(t.cells(r, true))
		for i := range cells {
			cells[i] = strings.ReplaceAll(cells[i], "|", `\|`)
		}
		if _, err := fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")); err != nil {
			return err
		}
	}
	return nil
}

// clean keeps a cell on one line, without control characters a hostile
// artifact could use to rewrite the terminal.
func clean(cells []string) []string {
	for i, c := range cells {
		cells[i] = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				return ' '
			}
			return r
		}, c)
	}
	return cells
}
