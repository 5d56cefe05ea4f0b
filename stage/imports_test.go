package stage

import (
	"os/exec"
	"strings"
	"testing"
)

// The layering the stage contract promises: no package under stages/ imports
// another (shared code lives in library packages), and neither the pipeline
// engine nor this contract imports a stage or the checkpoint format (the
// command builds the registry and passes it in). Checked on the non-test
// import graph, transitively.
func TestImportBoundaries(t *testing.T) {
	const mod = "github.com/mdlm-go/mdlm/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "../stages/...", "../pipeline", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		checked++
		for _, d := range deps {
			if !strings.HasPrefix(d, mod) {
				continue
			}
			switch {
			case strings.HasPrefix(pkg, mod+"stages/") && strings.HasPrefix(d, mod+"stages/"):
				t.Errorf("%s imports %s: a stage must not use another stage", pkg, d)
			case (pkg == mod+"pipeline" || pkg == mod+"stage") && (strings.HasPrefix(d, mod+"stages/") || d == mod+"checkpoint"):
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
	if checked < 9 {
		t.Errorf("checked only %d packages:\n%s", checked, out)
	}
}
