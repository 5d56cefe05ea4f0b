package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 19 review: `checkpoint export -o` and `export kubernetes -o` replaced
// any file, the pipeline they read and a file inside an artifact included.
func TestHostileFileOutput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ours := func(p string) bool { b, _ := os.ReadFile(p); return strings.HasPrefix(string(b), "ours") }
	user := write("user.txt", "precious")
	prev := write("prev.txt", "ours, from last time")
	pipe := write("p.yaml", "ours too, but an input")
	inArt := write("art/model.safetensors", "ours")
	write("art/"+ManifestName, "{}")
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Symlink(prev, filepath.Join(dir, "link"))
	for _, c := range []struct {
		path, want string
	}{
		{user, "was not written by this mdlm command"},
		{pipe, "is an input"},
		{inArt, "lies inside the artifact"},
		{filepath.Join(dir, "art", "new.safetensors"), "lies inside the artifact"},
		{filepath.Join(dir, "d"), "not a regular file"},
		{filepath.Join(dir, "link"), "not a regular file"},
		{prev, ""},
		{filepath.Join(dir, "new.txt"), ""},
	} {
		err := CheckFileOutput(c.path, ours, pipe)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want it allowed", c.path, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error containing %q", c.path, err, c.want)
		}
	}
	if b, _ := os.ReadFile(user); string(b) != "precious" {
		t.Error("the user's file changed")
	}
}
