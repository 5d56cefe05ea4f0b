package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReadRunState: any bytes in a run state file are read without panic and
// within the bound; every record read gives a state, and Redact of its error
// stays within MaxErrorBytes (plus the cut marker) and valid where its input
// was.
func FuzzReadRunState(f *testing.F) {
	f.Add([]byte(`{"ppl": {"state": "failed", "key": "k", "error": "boom https://u:p@h/x", "time": "2026-01-02T03:04:05Z", "pid": 1, "host": "h"}}`))
	f.Add([]byte(`{"a": {"state": "running", "pid": -5}}`))
	f.Add([]byte(`{"a": null, "b": {"time": "not a time"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(RunStatePath(p), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		rs, err := ReadRunState(p)
		if err != nil {
			if !strings.Contains(err.Error(), "p.yaml.runstate.json") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		for _, st := range rs {
			st.Alive()
			r := Redact(st.Error)
			if len(r) > MaxErrorBytes+len(" [cut]") {
				t.Errorf("redacted error of %d bytes", len(r))
			}
			if utf8.ValidString(st.Error) && !utf8.ValidString(r) {
				t.Errorf("Redact made valid UTF-8 invalid: %q", r)
			}
		}
	})
}
