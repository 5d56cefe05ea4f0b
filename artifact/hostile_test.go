package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func publishTest(t *testing.T, dir, content string) (Manifest, error) {
	t.Helper()
	return Publish(dir, Manifest{Type: "test/v1"}, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "y.txt"), []byte(content), 0o644)
	})
}

// Issue 19, defect 1: publication replaces only an mdlm artifact or an empty
// directory; anything else at the output path is refused and left as it was.
func TestHostilePublishNeverDeletesUserData(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		ok    bool
	}{
		{"absent", func(*testing.T, string) {}, true},
		{"empty directory", func(t *testing.T, dir string) { os.Mkdir(dir, 0o755) }, true},
		{"directory of user files", func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
			os.WriteFile(filepath.Join(dir, "sub", "thesis.tex"), []byte("x"), 0o644)
		}, false},
		{"regular file", func(t *testing.T, dir string) { os.WriteFile(dir, []byte("x"), 0o644) }, false},
		{"symbolic link", func(t *testing.T, dir string) {
			target := dir + "-target"
			os.Mkdir(target, 0o755)
			os.Symlink(target, dir)
		}, false},
		{"artifact", func(t *testing.T, dir string) {
			if _, err := publishTest(t, dir, "old"); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"artifact with an unlisted file", func(t *testing.T, dir string) {
			if _, err := publishTest(t, dir, "old"); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		}, false},
		{"directory with a broken manifest", func(t *testing.T, dir string) {
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, ManifestName), []byte("{"), 0o644)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "v")
			c.setup(t, dir)
			before := snapshot(t, root)
			_, err := publishTest(t, dir, "new")
			if c.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "y.txt")); string(b) != "new" {
					t.Fatalf("y.txt = %q", b)
				}
				entries, _ := os.ReadDir(root)
				for _, e := range entries {
					if e.Name() != "v" {
						t.Errorf("left beside the output: %s", e.Name())
					}
				}
				return
			}
			if err == nil || !errors.Is(err, ErrNotReplaceable) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err = %v, want ErrNotReplaceable naming %s", err, dir)
			}
			if after := snapshot(t, root); after != before {
				t.Errorf("the refused output changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshot lists every name under root with its content (links as targets).
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel)
		if d.Type()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			b.WriteString("->" + l)
		} else if d.Type().IsRegular() && d.Name() != StatCacheName {
			c, _ := os.ReadFile(p)
			b.WriteString("=" + string(c))
		}
		b.WriteString(";")
		return nil
	})
	return b.String()
}

// Issue 19, defect 1: ".", "..", "/", the home and current directories, their
// ancestors, and an input or a parent of one are never outputs.
func TestHostileOutputPaths(t *testing.T) {
	root := t.TempDir()
	cwd := filepath.Join(root, "a", "b")
	input := filepath.Join(root, "in", "kjv.jsonl.gz")
	os.MkdirAll(cwd, 0o755)
	os.MkdirAll(filepath.Dir(input), 0o755)
	os.WriteFile(input, []byte("x"), 0o644)
	t.Chdir(cwd)
	home, _ := os.UserHomeDir()
	refused := []string{".", "..", "./", "../..", "/", home, cwd, filepath.Join(root, "a"), root,
		input, filepath.Dir(input), filepath.Join(input, "sub"), "../b/."}
	for _, dir := range refused {
		if err := CheckOutputPath(dir, input); err == nil {
			t.Errorf("CheckOutputPath(%q) accepted", dir)
		}
	}
	for _, dir := range []string{"v", "../v", filepath.Join(root, "in2")} {
		if err := CheckOutputPath(dir, input); err != nil {
			t.Errorf("CheckOutputPath(%q): %v", dir, err)
		}
	}
	// Publish applies the same rule: from a/b, "-o .." publishes nothing and
	// deletes nothing.
	if _, err := publishTest(t, "..", "x"); err == nil {
		t.Fatal(`Publish("..") accepted`)
	}
	if _, err := os.Stat(input); err != nil {
		t.Fatalf("input gone: %v", err)
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Issue 19, defect 16b: a manifest's file entries are checked before any file
// they name is opened.
func TestHostileManifestEntries(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "secret"), []byte("s"), 0o644)
	dir := filepath.Join(root, "art")
	os.Mkdir(dir, 0o755)
	good := File{Path: "x", Size: 1, SHA256: sum("s")}
	os.WriteFile(filepath.Join(dir, "x"), []byte("s"), 0o644)
	bad := map[string][]File{
		"parent":      {{Path: "../secret", Size: 1, SHA256: sum("s")}},
		"absolute":    {{Path: filepath.Join(root, "secret"), Size: 1, SHA256: sum("s")}},
		"backslash":   {{Path: `..\secret`, Size: 1, SHA256: sum("s")}},
		"empty":       {{Path: "", Size: 1, SHA256: sum("s")}},
		"duplicate":   {good, good},
		"manifest":    {{Path: ManifestName, Size: 1, SHA256: sum("s")}},
		"stat cache":  {{Path: StatCacheName, Size: 1, SHA256: sum("s")}},
		"dot":         {{Path: "./x", Size: 1, SHA256: sum("s")}},
		"inner dots":  {{Path: "a/../x", Size: 1, SHA256: sum("s")}},
		"negative":    {{Path: "x", Size: -1, SHA256: sum("s")}},
		"short sha":   {{Path: "x", Size: 1, SHA256: "abc"}},
		"upper sha":   {{Path: "x", Size: 1, SHA256: strings.ToUpper(sum("s"))}},
		"nul in name": {{Path: "x\x00y", Size: 1, SHA256: sum("s")}},
	}
	for name, files := range bad {
		m := Manifest{Type: "test/v1", Files: files}
		raw, _ := json.Marshal(m)
		os.WriteFile(filepath.Join(dir, ManifestName), raw, 0o644)
		if _, err := Read(dir, ""); err == nil {
			t.Errorf("%s: Read accepted %+v", name, files)
		}
		if err := Verify(dir, m); err == nil {
			t.Errorf("%s: Verify accepted %+v", name, files)
		}
	}
	m := Manifest{Type: "test/v1", Files: []File{good}}
	raw, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(dir, ManifestName), raw, 0o644)
	if got, err := Read(dir, ""); err != nil || Verify(dir, got) != nil {
		t.Fatalf("a good manifest: %v", err)
	}
}

// FuzzManifest: whatever ParseManifest accepts names only clean local paths
// and can be written back and read again to the same digest.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"type":"t/v1","files":[{"path":"x","size":1,"sha256":"` + sum("s") + `"}]}`))
	f.Add([]byte(`{"type":"t/v1","files":[{"path":"../../etc/passwd","size":1,"sha256":"` + sum("s") + `"}]}`))
	f.Add([]byte(`{"type":"t/v1","files":[{"path":"a/b","size":-1,"sha256":""}],"run":"sha256:00"}`))
	f.Add([]byte(`{"type":"t/v1","files":[{"path":"a\\b","size":0,"sha256":"` + sum("") + `"},{"path":"a\\b"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseManifest(raw)
		if err != nil {
			return
		}
		for _, file := range m.Files {
			if !filepath.IsLocal(filepath.FromSlash(file.Path)) || strings.Contains(file.Path, `\`) || file.Size < 0 {
				t.Fatalf("accepted %+v", file)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted but cannot write back: %v", err)
		}
		m2, err := ParseManifest(again)
		if err != nil {
			t.Fatalf("written back, refused: %v", err)
		}
		if m2.Digest() != m.Digest() {
			t.Fatalf("digest changed on rewrite: %s != %s", m2.Digest(), m.Digest())
		}
	})
}
