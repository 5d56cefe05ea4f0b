package stages

import (
	"testing"

	"github.com/mdlm-go/mdlm/stage"
)

// Every Def in the table derives a Spec, its kind is unique, and its Options
// are a Builder or a Sharder with exactly one output flag.
func TestRegistry(t *testing.T) {
	reg, err := stage.NewRegistry(All...)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range All {
		if _, ok := reg[d.Kind]; !ok {
			t.Errorf("kind %s missing from the registry", d.Kind)
		}
		if d.Help == "" || d.Output == "" || d.Version < 1 {
			t.Errorf("kind %s: Help, Output and Version must be set: %+v", d.Kind, d)
		}
	}
	if len(reg) != len(All) {
		t.Errorf("registry has %d kinds, the table %d", len(reg), len(All))
	}
}
