package results

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/mdlm-go/mdlm/pipeline"
)

// A Grid is the rows pivoted on one matrix axis: one line per value of the
// axis, one column per pipeline (and per value of the other axes, and per
// stage when several matrix stages report the metric), each cell one metric.
// It is the paper's zero-shot table (Table 3: one line per data set, the
// model's perplexity bound in its column): `mdlm show
// pipelines/zero-shot.yaml --rows set`.
type Grid struct {
	Axis, Metric string
	Lines        []string // the axis values, in the pipeline file's order
	Columns      []string
	Cells        map[string]map[string]json.Number // line -> column -> value
}

// AxisValues reads the axis values from an expanded stage name
// (base@axis=value[,axis=value...], pipeline/matrix.go); nil for a stage of
// no matrix.
func AxisValues(stage string) (base string, vals map[string]string) {
	base, rest, ok := strings.Cut(stage, "@")
	if !ok {
		return stage, nil
	}
	vals = map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return stage, nil
		}
		vals[k] = v
	}
	return base, vals
}

// NewGrid pivots rows on axis, taking metric from each. order lists stage
// names in the pipelines' file order (their expansions give the lines'
// order); lines it does not name follow sorted. Rows without the axis, or
// without the metric, are left out.
func NewGrid(rows []Row, axis, metric string, order []string) Grid {
	g := Grid{Axis: axis, Metric: metric, Cells: map[string]map[string]json.Number{}}
	bases := map[string]bool{}
	for _, r := range rows {
		if b, vals := AxisValues(r.Stage); vals[axis] != "" && r.Metrics[metric] != "" {
			bases[b] = true
		}
	}
	for _, r := range rows {
		base, vals := AxisValues(r.Stage)
		line, v := vals[axis], r.Metrics[metric]
		if line == "" || v == "" {
			continue
		}
		col := columnName(r.Pipeline, base, vals, axis, len(bases) > 1)
		if g.Cells[line] == nil {
			g.Cells[line] = map[string]json.Number{}
		}
		g.Cells[line][col] = v
		g.Columns = appendNew(g.Columns, col)
	}
	g.Lines = lineOrder(g.Cells, axis, order)
	return g
}

// columnName names a cell's column: the pipeline, the stage when several
// matrix stages report the metric, and the other axes' values.
func columnName(pipelineName, base string, vals map[string]string, axis string, withBase bool) string {
	parts := []string{}
	if pipelineName != "" {
		parts = append(parts, pipelineName)
	}
	if withBase || len(parts) == 0 {
		parts = append(parts, base)
	}
	for _, k := range sortedKeys(vals) {
		if k != axis {
			parts = append(parts, k+"="+vals[k])
		}
	}
	return strings.Join(parts, " ")
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// lineOrder is the axis values in the order the stages are listed in order,
// then the rest sorted.
func lineOrder(cells map[string]map[string]json.Number, axis string, order []string) []string {
	var lines []string
	for _, name := range order {
		if _, vals := AxisValues(name); cells[vals[axis]] != nil {
			lines = appendNew(lines, vals[axis])
		}
	}
	var rest []string
	for line := range cells {
		if !contains(lines, line) {
			rest = append(rest, line)
		}
	}
	sort.Strings(rest)
	return append(lines, rest...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// header is the axis, then one column per model with the metric named.
func (g Grid) header() []string {
	h := []string{g.Axis}
	for _, c := range g.Columns {
		h = append(h, c+": "+g.Metric)
	}
	return h
}

func (g Grid) cells(line string) []string {
	c := []string{line}
	for _, col := range g.Columns {
		c = append(c, g.Cells[line][col].String())
	}
	return clean(c)
}

// WriteText writes the grid as an aligned table.
func (g Grid) WriteText(w io.Writer) error {
	if len(g.Lines) == 0 {
		_, err := fmt.Fprintf(w, "no %s of a stage with matrix axis %q found\n", g.Metric, g.Axis)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(clean(g.header()), "\t"))
	for _, line := range g.Lines {
		fmt.Fprintln(tw, strings.Join(g.cells(line), "\t"))
	}
	return tw.Flush()
}

// WriteMarkdown writes the grid as a Markdown table.
func (g Grid) WriteMarkdown(w io.Writer) error {
	esc := func(c []string) string {
		for i := range c {
			c[i] = strings.ReplaceAll(c[i], "|", `\|`)
		}
		return "| " + strings.Join(c, " | ") + " |\n"
	}
	h := clean(g.header())
	io.WriteString(w, esc(h))
	io.WriteString(w, "|"+strings.Repeat(" --- |", len(h))+"\n")
	for _, line := range g.Lines {
		if _, err := io.WriteString(w, esc(g.cells(line))); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes the grid as CSV.
func (g Grid) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(g.header())
	for _, line := range g.Lines {
		cw.Write(g.cells(line))
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes one object per line: the axis value under the axis name,
// each column's number under its header.
func (g Grid) WriteJSON(w io.Writer) error {
	out := make([]map[string]any, 0, len(g.Lines))
	h := g.header()
	for _, line := range g.Lines {
		obj := map[string]any{g.Axis: line}
		for i, col := range g.Columns {
			if v, ok := g.Cells[line][col]; ok {
				obj[h[i+1]] = v
			}
		}
		out = append(out, obj)
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(raw, '\n'))
	return err
}

// WithoutFailed leaves out the rows of stages whose last run failed (the
// pipeline's run state, pipeline/runstate.go): the output the lock file still
// names is not the current definition's result. Each is logged with its error.
func WithoutFailed(rows []Row, rs pipeline.RunState, log *slog.Logger) []Row {
	out := rows[:0]
	for _, r := range rows {
		if rec, ok := rs[r.Stage]; ok && rec.State == pipeline.StateFailed {
			log.Warn("not shown: the stage failed in its last run", "pipeline", r.Pipeline, "stage", r.Stage, "at", rec.Time, "err", rec.Error)
			continue
		}
		out = append(out, r)
	}
	return out
}
