package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
)

// tree lists every name under root with its content.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if strings.HasSuffix(rel, ".mdlm-lock") { // the output's lock file (artifact.LockPath)
			return nil
		}
		b.WriteString(rel)
		if d.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			b.WriteString("=" + string(c))
		}
		b.WriteString(";")
		return nil
	})
	return b.String()
}

// Issue 19, defect 1: the reproductions. -o naming a directory of the user's
// files, the parent of the current directory, or a path whose .work holds the
// user's notes is refused with an error naming it, and nothing is deleted.
func TestHostilePublishKeepsUserFiles(t *testing.T) {
	kjv, err := filepath.Abs(filepath.Join("..", "..", "testdata", "kjv", "kjv.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	t.Chdir(root)

	// mkdir -p v/sub; echo x > v/sub/thesis.tex; mdlm download kjv.jsonl.gz -o v
	os.MkdirAll(filepath.Join("v", "sub"), 0o755)
	os.WriteFile(filepath.Join("v", "sub", "thesis.tex"), []byte("x"), 0o644)
	before := tree(t, root)
	out, errOut, code := mdlm(t, "download", kjv, "-o", "v")
	if code == 0 || !strings.Contains(out+errOut, "v") || !strings.Contains(out+errOut, "choose another -o") {
		t.Errorf("download -o v over the user's files: exit %d\n%s%s", code, out, errOut)
	}
	if after := tree(t, root); after != before {
		t.Errorf("download -o v changed the tree:\nbefore %s\nafter  %s", before, after)
	}

	// From a/b: mdlm download kjv.jsonl.gz -o ..
	ab := filepath.Join(root, "a", "b")
	os.MkdirAll(ab, 0o755)
	input, _ := os.ReadFile(kjv)
	os.WriteFile(filepath.Join(ab, "kjv.jsonl.gz"), input, 0o644)
	t.Chdir(ab)
	before = tree(t, root)
	if out, errOut, code := mdlm(t, "download", "kjv.jsonl.gz", "-o", ".."); code == 0 {
		t.Errorf("download -o .. from a/b: exit 0\n%s%s", out, errOut)
	}
	if _, _, code := mdlm(t, "download", "kjv.jsonl.gz", "-o", "."); code == 0 {
		t.Error("download -o . accepted")
	}
	if _, _, code := mdlm(t, "download", filepath.Join(ab, "kjv.jsonl.gz"), "-o", filepath.Join(root, "a")); code == 0 {
		t.Error("download -o <a parent of the input> accepted")
	}
	if after := tree(t, root); after != before {
		t.Errorf("-o .. changed the tree:\nbefore %s\nafter  %s", before, after)
	}

	// mkdir v2.work; echo x > v2.work/notes; mdlm eval ... -o v2
	t.Chdir(root)
	os.Mkdir("v2.work", 0o755)
	os.WriteFile(filepath.Join("v2.work", "notes"), []byte("x"), 0o644)
	os.Mkdir("data", 0o755)
	before = tree(t, root)
	out, errOut, code = mdlm(t, "eval", "--checkpoint", "data", "--data", "data", "-o", "v2")
	if code == 0 || !strings.Contains(out+errOut, "v2.work") {
		t.Errorf("eval -o v2 with the user's v2.work: exit %d\n%s%s", code, out, errOut)
	}
	if after := tree(t, root); after != before {
		t.Errorf("eval -o v2 changed the tree:\nbefore %s\nafter  %s", before, after)
	}

	// A download over a previous artifact of its own replaces it.
	if out, errOut, code := mdlm(t, "download", kjv, "-o", "w"); code != 0 {
		t.Fatalf("download -o w: exit %d\n%s%s", code, out, errOut)
	}
	// Issue 19, defect 16a: what a SIGKILLed publication left (an empty
	// .w.tmp-<digits>) is removed by the next run on w.
	os.Mkdir(".w.tmp-4242", 0o755)
	if out, errOut, code := mdlm(t, "download", kjv, "--hold-out", "5", "-o", "w"); code != 0 {
		t.Fatalf("download -o w over its artifact: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(".w.tmp-4242"); !os.IsNotExist(err) {
		t.Error("the killed run's .w.tmp-4242 was kept")
	}
}

// Issue 19, defect 4 through the command line: shards of another run are
// discarded, never merged. Shard 0 tokenized with gpt2, then shards 0 and 1
// with bytes, publish exactly what a clean bytes run publishes; so does input
// A's shard 0 followed by input B's shard 1 and shard 0.
func TestHostileShardsOfAnotherRunCLI(t *testing.T) {
	for _, v := range []string{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	kjv, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "kjv", "kjv.jsonl.gz"))
	dir := t.TempDir()
	must := func(args ...string) {
		t.Helper()
		if out, errOut, code := mdlm(t, args...); code != 0 {
			t.Fatalf("mdlm %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	text, textB := filepath.Join(dir, "text"), filepath.Join(dir, "textB")
	must("download", kjv, "--shard-rows", "300", "-o", text)
	must("download", kjv, "--shard-rows", "300", "--hold-out", "7", "-o", textB)
	tokenize := func(in, out, tok string, index int) {
		t.Helper()
		must("tokenize", in, "-o", out, "--tokenizer", tok, "--num-shards", "2", "--shard-index", strconv.Itoa(index))
	}
	digest := func(out string) string {
		t.Helper()
		m, err := artifact.Read(out, "tokens/v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := artifact.Verify(out, m); err != nil {
			t.Fatal(err)
		}
		return m.Digest()
	}

	clean := filepath.Join(dir, "clean")
	tokenize(text, clean, "bytes", 0)
	tokenize(text, clean, "bytes", 1)
	mixed := filepath.Join(dir, "mixed")
	tokenize(text, mixed, "gpt2", 0)
	tokenize(text, mixed, "bytes", 0)
	tokenize(text, mixed, "bytes", 1)
	if m, _ := artifact.Read(mixed, ""); m.Params["tokenizer"] != "bytes" || digest(mixed) != digest(clean) {
		t.Errorf("gpt2 shard 0 then bytes shards 0, 1: tokenizer %v, digest %s; a clean bytes run: %s",
			m.Params["tokenizer"], digest(mixed), digest(clean))
	}

	// Input A's shard 0, then input B at the same path: shard 1 does not
	// publish a mixture; shard 0 again completes a run of B alone.
	cleanB := filepath.Join(dir, "cleanB")
	tokenize(textB, cleanB, "bytes", 0)
	tokenize(textB, cleanB, "bytes", 1)
	in, ab := filepath.Join(dir, "in"), filepath.Join(dir, "ab")
	must("download", kjv, "--shard-rows", "300", "-o", in)
	tokenize(in, ab, "bytes", 0)
	must("download", kjv, "--shard-rows", "300", "--hold-out", "7", "-o", in)
	tokenize(in, ab, "bytes", 1)
	if _, err := os.Stat(ab); !os.IsNotExist(err) {
		t.Fatal("input A's shard 0 and input B's shard 1 were published together")
	}
	tokenize(in, ab, "bytes", 0)
	if digest(ab) != digest(cleanB) {
		t.Errorf("after A's shard 0 and B's shards 1, 0: digest %s, a clean run of B: %s", digest(ab), digest(cleanB))
	}
}
