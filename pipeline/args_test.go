package pipeline

import (
	"slices"
	"testing"
)

// Args puts positionals that start with "-" after "--", so kong reads them
// as the values they are (a `with:` path "-h" is not a request for help);
// other command lines keep their order, and an array task's shard flags go
// before the "--".
func TestArgsDashPositionals(t *testing.T) {
	sp := kindsSpec(t)
	cases := []struct {
		name  string
		with  map[string]any
		want  []string
		shard []string
	}{
		{"plain", map[string]any{"paths": []any{"a", "b"}, "count": 3},
			[]string{"kinds", "a", "b", "--count=3", "-o", "out"},
			[]string{"kinds", "a", "b", "--count=3", "-o", "out", "--shard-index=1", "--num-shards=2"}},
		{"help", map[string]any{"paths": []any{"-h"}},
			[]string{"kinds", "-o", "out", "--", "-h"},
			[]string{"kinds", "-o", "out", "--shard-index=1", "--num-shards=2", "--", "-h"}},
		{"mixed", map[string]any{"paths": []any{"a", "--x"}, "on": true},
			[]string{"kinds", "--on", "-o", "out", "--", "a", "--x"},
			[]string{"kinds", "--on", "-o", "out", "--shard-index=1", "--num-shards=2", "--", "a", "--x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Args(sp, nil, c.with, "out")
			if !slices.Equal(got, c.want) {
				t.Errorf("Args = %q, want %q", got, c.want)
			}
			if !checkAgainstKong(t, sp, c.with) {
				t.Errorf("kong refused %q", got)
			}
			st := &Stage{Spec: sp, With: c.with}
			s := &step{Decision: Decision{Out: "out", Args: got}, st: st, sharded: true}
			x := &executor{Engine: &Engine{ShardIndex: 1, NumShards: 2}}
			if sh := x.commandLine(s, nil); !slices.Equal(sh, c.shard) {
				t.Errorf("array task's command line = %q, want %q", sh, c.shard)
			}
			if !slices.Equal(s.Args, c.want) {
				t.Errorf("commandLine changed the step's Args to %q", s.Args)
			}
		})
	}
}
