package results

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/pipeline"
)

func TestAxisValues(t *testing.T) {
	cases := []struct {
		stage, base string
		vals        map[string]string
	}{
		{"ppl", "ppl", nil},
		{"ppl@set=ptb", "ppl", map[string]string{"set": "ptb"}},
		{"samples@seed=2,steps=128", "samples", map[string]string{"seed": "2", "steps": "128"}},
		{"ppl@set", "ppl@set", nil}, // not an expansion: no '='
	}
	for _, c := range cases {
		base, vals := AxisValues(c.stage)
		if base != c.base || len(vals) != len(c.vals) {
			t.Errorf("AxisValues(%q) = %q %v, want %q %v", c.stage, base, vals, c.base, c.vals)
		}
		for k, v := range c.vals {
			if vals[k] != v {
				t.Errorf("AxisValues(%q)[%s] = %q, want %q", c.stage, k, vals[k], v)
			}
		}
	}
}

func row(pipe, stage, ppl string) Row {
	m := map[string]json.Number{}
	if ppl != "" {
		m["ppl"] = json.Number(ppl)
	}
	return Row{Pipeline: pipe, Stage: stage, Metrics: m}
}

// The zero-shot layout: lines in the file's order (then the rest sorted),
// one column per pipeline, the other axes' values in the column name, rows
// without the axis or the metric left out.
func TestGrid(t *testing.T) {
	rows := []Row{
		row("zs", "ppl@set=wikitext2", "31.5"), row("zs", "ppl@set=ptb", "95.25"), row("zs", "ppl@set=zzz", "7"),
		row("zs2", "ppl@set=ptb", "80"), row("zs", "plain", "1"), row("zs", "ppl@set=nometric", ""),
	}
	g := NewGrid(rows, "set", "ppl", []string{"ppl@set=ptb", "ppl@set=wikitext2"})
	var md bytes.Buffer
	if err := g.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	want := "| set | zs: ppl | zs2: ppl |\n| --- | --- | --- |\n| ptb | 95.25 | 80 |\n| wikitext2 | 31.5 |  |\n| zzz | 7 |  |\n"
	if md.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", md.String(), want)
	}
	var js bytes.Buffer
	g.WriteJSON(&js)
	var objs []map[string]any
	if err := json.Unmarshal(js.Bytes(), &objs); err != nil || len(objs) != 3 || objs[0]["set"] != "ptb" || objs[0]["zs2: ppl"] != 80.0 {
		t.Errorf("json %s (%v)", js.String(), err)
	}
	// Another axis goes into the column names.
	g = NewGrid([]Row{row("s", "ppl@seed=1,T=0", "2"), row("s", "ppl@seed=1,T=1000", "3")}, "seed", "ppl", nil)
	if strings.Join(g.Columns, ";") != "s T=0;s T=1000" || len(g.Lines) != 1 {
		t.Errorf("columns %q lines %q", g.Columns, g.Lines)
	}
	var txt bytes.Buffer
	NewGrid(nil, "set", "ppl", nil).WriteText(&txt)
	if !strings.Contains(txt.String(), `no ppl of a stage with matrix axis "set"`) {
		t.Errorf("empty grid: %q", txt.String())
	}
}

// A hostile axis value or pipeline name cannot break the table or the
// terminal: '|' is escaped, control characters blanked.
func TestGridHostileCells(t *testing.T) {
	g := NewGrid([]Row{row("p|x\x1b[2J", "ppl@set=a|b\nc", "1")}, "set", "ppl", nil)
	var md, txt bytes.Buffer
	g.WriteMarkdown(&md)
	g.WriteText(&txt)
	for _, out := range []string{md.String(), txt.String()} {
		if strings.Contains(out, "\x1b") || strings.Contains(out, "b\nc") {
			t.Errorf("hostile cell leaked: %q", out)
		}
	}
	if !strings.Contains(md.String(), `a\|b c`) {
		t.Errorf("markdown did not escape the cell: %q", md.String())
	}
}

// The rows of stages that failed in their last run are left out.
func TestWithoutFailed(t *testing.T) {
	rows := []Row{row("p", "a", "1"), row("p", "b", "2"), row("p", "c", "3")}
	rs := pipeline.RunState{"b": {State: pipeline.StateFailed, Error: "boom"}, "c": {State: pipeline.StateRunning}}
	got := WithoutFailed(rows, rs, slog.New(slog.DiscardHandler))
	if len(got) != 2 || got[0].Stage != "a" || got[1].Stage != "c" {
		t.Errorf("%+v", got)
	}
}
