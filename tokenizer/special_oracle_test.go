package tokenizer

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// specialFile is a tokenizer.json TestEncodeSpecialOracle compares: a name
// for the report and the plain file node reads.
type specialFile struct{ name, path string }

// specialFiles are every tokenizer.json at hand: the built-ins, the committed
// families (unpacked into dir), the hub families of familyGoldens where the
// oracle folder holds them, and each <oracle>/extra/<name>/tokenizer.json.
func specialFiles(t *testing.T, dir string) []specialFile {
	t.Helper()
	files := []specialFile{
		{"gpt2", filepath.Join("data", "gpt2-tokenizer.json")},
		{"bert-base-uncased", filepath.Join("data", "bert-base-uncased-tokenizer.json")},
	}
	for _, name := range committedFamilies {
		files = append(files, specialFile{name, unpackFamily(t, name, dir)})
	}
	for _, fam := range familyGoldens {
		if p := familyPath(fam.npm); fam.npm != "" && fileExists(p) {
			files = append(files, specialFile{fam.name, p})
		}
	}
	extra, _ := filepath.Glob(filepath.Join(oracleDir(), "extra", "*", "tokenizer.json"))
	for _, p := range extra {
		files = append(files, specialFile{"extra/" + filepath.Base(filepath.Dir(p)), p})
	}
	return files
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// unpackFamily writes the committed family name's tokenizer.json, gunzipped,
// into dir and returns its path.
func unpackFamily(t *testing.T, name, dir string) string {
	t.Helper()
	data, _ := committedFamilyJSON(t, name)
	out := filepath.Join(dir, name+".json")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// specialTexts are the corpus documents but the code point sweep, its first
// 16 sweep documents (Latin to Greek), and texts that start or end with an
// added token, or are one.
func specialTexts(t *testing.T) []string {
	return append(corpusTexts(t, 16), "<s>", "</s>x", "x<|endoftext|>", "[CLS] [SEP]", "<|begin_of_text|>hi", "<bos>", "")
}

// corpusTexts are the corpus documents but the code point sweep, and the
// sweep's first sweeps documents.
func corpusTexts(t *testing.T, sweeps int) []string {
	var texts []string
	for _, d := range readCorpus(t) {
		if d.Sweep == nil || *d.Sweep < sweeps {
			texts = append(texts, d.Text)
		}
	}
	return texts
}

// compareIDs checks encode on each text against the oracle's ids, reporting
// the first three that differ and how many do.
func compareIDs(t *testing.T, texts []string, want [][]int, encode func(string) []int) {
	t.Helper()
	if len(want) != len(texts) {
		t.Fatalf("the oracle answered for %d of %d texts", len(want), len(texts))
	}
	bad := 0
	for k, text := range texts {
		if got := encode(text); !slices.Equal(got, want[k]) {
			if bad++; bad <= 3 {
				t.Errorf("text %d (%.60q):\n  got  %v\n  want %v", k, text, got, want[k])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d texts differ", bad, len(texts))
	}
}

// nodeOracle returns the node_modules folder of the oracle that
// gen_goldens.sh and test.sh install (node and the npm package tokenizers),
// and skips t where it is not installed.
func nodeOracle(t *testing.T) string {
	t.Helper()
	mods := filepath.Join(oracleDir(), "node_modules")
	if !fileExists(filepath.Join(mods, "tokenizers")) {
		t.Skipf("no oracle at %s (run tokenizer/testdata/gen_goldens.sh)", mods)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	return mods
}

// runOracle runs node on testdata/script with args and the oracle's modules,
// then decodes the JSON the script wrote to out into v.
func runOracle(t *testing.T, mods, script, out string, v any, args ...string) {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join("testdata", script)}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("node %s wrote %s: %v", script, out, err)
	}
}

// writeFile writes data to path, failing t on error.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEncodeSpecialOracle compares EncodeSpecial (`mdlm tokenizer encode
// --special`) with Hugging Face tokenizers' encode(text,
// add_special_tokens=true), which runs the file's post-processor
// (TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence),
// on every tokenizer.json at hand (specialFiles): the goldens compare Encode
// alone. It runs where the oracle (node and the npm package tokenizers) is
// installed, as test.sh does.
func TestEncodeSpecialOracle(t *testing.T) {
	mods := nodeOracle(t)
	dir := t.TempDir()
	files := specialFiles(t, dir)
	texts := specialTexts(t)
	textsFile, out := filepath.Join(dir, "texts.json"), filepath.Join(dir, "hf.json")
	raw, _ := json.Marshal(texts)
	writeFile(t, textsFile, raw)
	args := []string{textsFile, out}
	for _, f := range files {
		args = append(args, f.path)
	}
	var hf [][][]int
	runOracle(t, mods, "special_oracle.js", out, &hf, args...)
	if len(hf) != len(files) {
		t.Fatalf("the oracle answered for %d of %d files", len(hf), len(files))
	}
	for i, f := range files {
		t.Run(f.name, func(t *testing.T) {
			tok, err := LoadFile(f.path)
			if err != nil {
				t.Fatal(err)
			}
			compareIDs(t, texts, hf[i], tok.EncodeSpecial)
			t.Logf("%s: %d texts compared", f.path, len(texts))
		})
	}
}

// TestNestedClassSplitOracle compares Encode with Hugging Face tokenizers on a
// GPT-2 vocabulary split as BLOOM's tokenizer.json splits (a Split whose
// pattern nests a class in a negated one, then ByteLevel without its regex),
// over the corpus but its code point sweep and the sweep's first 64 documents.
func TestNestedClassSplitOracle(t *testing.T) {
	mods := nodeOracle(t)
	raw, err := os.ReadFile(filepath.Join("data", "gpt2-tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": ` ?[^(\s|[.,!?…。，、।۔،])]+`}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	texts := corpusTexts(t, 64)
	dir := t.TempDir()
	file, textsFile, out := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "texts.json"), filepath.Join(dir, "hf.json")
	tj, _ := json.Marshal(texts)
	writeFile(t, file, data)
	writeFile(t, textsFile, tj)
	var hf struct{ Docs []struct{ IDs []int } }
	runOracle(t, mods, "train_oracle.js", out, &hf, file, textsFile, out)
	tok, err := Parse(data, "bloom-split")
	if err != nil {
		t.Fatal(err)
	}
	want := make([][]int, len(hf.Docs))
	for k, d := range hf.Docs {
		want[k] = d.IDs
	}
	compareIDs(t, texts, want, tok.Encode)
}
