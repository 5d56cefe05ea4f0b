package sample

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPrompts(t *testing.T) {
	cases := []struct {
		name, in string
		want     []Prompt
		mention  string
	}{
		{"rows", "{\"prefix\":\"a\"}\n\n  {\"suffix\":\"b\", \"prefix\": \"c\"}  \n{\"template\":\"1,_\"}", []Prompt{{Prefix: "a"}, {Prefix: "c", Suffix: "b"}, {Template: "1,_"}}, ""},
		{"empty row", "{}\n", []Prompt{{}}, ""},
		{"crlf", "{\"prefix\":\"a\"}\r\n", []Prompt{{Prefix: "a"}}, ""},
		{"unknown key", "{\"prefix\":\"a\"}\n{\"text\":\"b\"}", nil, "line 2"},
		{"template and prefix", "{\"template\":\"1\",\"prefix\":\"a\"}", nil, "line 1: a template together"},
		{"not an object", "[\"a\"]", nil, "line 1"},
		{"null", "null", nil, "line 1"},
		{"number", "{\"prefix\":3}", nil, "line 1"},
		{"trailing", "{\"prefix\":\"a\"}}", nil, "data after"},
		{"two objects", "{\"prefix\":\"a\"} {\"prefix\":\"b\"}", nil, "data after"},
		{"bad utf-8", "{\"prefix\":\"\xff\"}", nil, "UTF-8"},
		{"nothing", "\n \n", nil, "no prompts"},
		{"long line", strings.Repeat(" ", maxPromptLineBytes+1), nil, "line 1: longer than"},
	}
	for _, c := range cases {
		got, err := ReadPrompts(strings.NewReader(c.in))
		if c.mention != "" {
			if err == nil || !strings.Contains(err.Error(), c.mention) {
				t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.mention)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%s: %v, %v", c.name, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: row %d = %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}
}

func TestReadPromptsLimits(t *testing.T) {
	many := strings.Repeat("{}\n", maxPrompts+1)
	if _, err := ReadPrompts(strings.NewReader(many)); err == nil || !strings.Contains(err.Error(), "more than 100000 prompts") {
		t.Errorf("%d rows: err = %v", maxPrompts+1, err)
	}
	dir := t.TempDir()
	big := filepath.Join(dir, "big.jsonl")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxPromptsBytes + 1); err != nil { // sparse: refused before reading
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := ReadPromptsFile(big); err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("a file over the limit: err = %v", err)
	}
	if _, _, err := ReadPromptsFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: err = %v", err)
	}
	if _, _, err := ReadPromptsFile(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "--prompts") {
		t.Errorf("a missing file: err = %v", err)
	}
}

// FuzzReadPrompts: any bytes give prompts or an error, never a panic; what is
// accepted holds no template together with a prefix or suffix, and reads
// back the same after a round trip through JSON lines.
func FuzzReadPrompts(f *testing.F) {
	f.Add([]byte("{\"prefix\":\"a\"}\n{\"suffix\":\"b\"}\n"))
	f.Add([]byte("{\"template\":\"1,_,3\"}"))
	f.Add([]byte("{}\n\n{\"prefix\":\"\\u00e9\"}"))
	f.Add([]byte("{\"prefix\":\"a\"}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ReadPrompts(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(ps) == 0 || len(ps) > maxPrompts {
			t.Fatalf("%d prompts accepted", len(ps))
		}
		var buf bytes.Buffer
		for _, p := range ps {
			if p.check() != nil {
				t.Fatalf("accepted %+v", p)
			}
			raw, err := jsonLine(p)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(raw)
		}
		again, err := ReadPrompts(&buf)
		if err != nil || len(again) != len(ps) {
			t.Fatalf("round trip: %v, %v", again, err)
		}
		for i := range ps {
			if again[i] != ps[i] {
				t.Fatalf("round trip row %d: %+v, want %+v", i, again[i], ps[i])
			}
		}
	})
}

func jsonLine(p Prompt) ([]byte, error) {
	raw, err := json.Marshal(p)
	return append(raw, '\n'), err
}
