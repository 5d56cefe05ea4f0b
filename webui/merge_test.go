package webui

import (
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/results"
)

// A run of the cache wins over a bucket curve of the same ID; the rest are
// added, in ID order.
func TestMergeRuns(t *testing.T) {
	for _, c := range []struct {
		runs, more []string // IDs; a run of more has State "bucket"
		want       string   // ID:state, in order
	}{
		{nil, nil, ""},
		{[]string{"b"}, nil, "b:cache"},
		{nil, []string{"b", "a"}, "a:bucket b:bucket"},
		{[]string{"model-1"}, []string{"model-1", "model-0"}, "model-0:bucket model-1:cache"},
	} {
		var runs, more []results.Run
		for _, id := range c.runs {
			runs = append(runs, results.Run{ID: id, State: "cache"})
		}
		for _, id := range c.more {
			more = append(more, results.Run{ID: id, State: "bucket"})
		}
		var got []string
		for _, r := range mergeRuns(runs, more) {
			got = append(got, r.ID+":"+r.State)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("merge %v + %v = %v, want %s", c.runs, c.more, got, c.want)
		}
	}
}
