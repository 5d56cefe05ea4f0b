package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// committedFamilies are the tokenizer.json files committed gzipped in
// testdata/families (gen_unigram_files.js) with their goldens: Unigram with
// the Precompiled normalizer (ALBERT's SentencePiece model), Unigram with
// byte_fallback, WordLevel, and the pre-tokenizers UnicodeScripts, Digits,
// Punctuation, CharDelimiterSplit and FixedLength, the ByteLevel normalizer
// and the CTC decoder.
var committedFamilies = []string{"albert", "t5style", "unigram_bytes", "wordlevel", "bytelevel_unigram"}

func loadCommittedFamily(t testing.TB, name string) *HF {
	t.Helper()
	data, path := committedFamilyJSON(t, name)
	tok, err := Parse(data, path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// committedFamilyJSON returns the committed family name's tokenizer.json,
// gunzipped, and the path it was read from.
func committedFamilyJSON(t testing.TB, name string) ([]byte, string) {
	t.Helper()
	path := filepath.Join("testdata", "families", name+".json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, MaxFileBytes+1))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data, path
}

// TestCommittedFamilyGolden compares Encode and Decode with Hugging Face
// tokenizers' ids and text (testdata/gen_goldens.sh) on every corpus document
// for the committed families.
func TestCommittedFamilyGolden(t *testing.T) {
	docs := readCorpus(t)
	for _, name := range committedFamilies {
		t.Run(name, func(t *testing.T) {
			compareGoldens(t, loadCommittedFamily(t, name), docs,
				filepath.Join("testdata", "golden", name+".ids.gz"), filepath.Join("testdata", "golden", name+".decoded.gz"))
		})
	}
}

// TestExtraFamilyGolden does the same for each <oracle>/extra/<name>/tokenizer.json
// a user put there (real T5, XLM-RoBERTa or mT5 files, not committed for their
// licences) once gen_goldens.sh has written ids.gz and decoded.gz beside it.
func TestExtraFamilyGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(oracleDir(), "extra", "*", "tokenizer.json"))
	if len(files) == 0 {
		t.Skipf("no %s/extra/<name>/tokenizer.json (see testdata/gen_goldens.js)", oracleDir())
	}
	docs := readCorpus(t)
	for _, file := range files {
		dir := filepath.Dir(file)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(dir, "ids.gz")); err != nil {
				t.Skipf("no goldens beside %s: run tokenizer/testdata/gen_goldens.sh", file)
			}
			tok, err := LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			compareGoldens(t, tok, docs, filepath.Join(dir, "ids.gz"), filepath.Join(dir, "decoded.gz"))
		})
	}
}

// compareGoldens checks Encode against the golden ids and Decode of those ids
// against the golden text, document by document, then BatchEncode on all of
// them (goldenBatch).
func compareGoldens(t *testing.T, tok Tokenizer, docs []corpusDoc, idsPath, decodedPath string) {
	t.Helper()
	golden := readGzipLines(t, idsPath)
	decoded := readGzipLines(t, decodedPath)
	if len(golden) != len(docs) || len(decoded) != len(docs) {
		t.Fatalf("%d golden and %d decoded lines for %d documents: regenerate with gen_goldens.sh", len(golden), len(decoded), len(docs))
	}
	compared, bad, badDecode := 0, 0, 0
	var batch goldenBatch
	for i, line := range golden {
		want, ok, err := parseIDs(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", idsPath, i+1, err)
		}
		if !ok {
			continue
		}
		compared++
		batch.add(i, docs[i].Text, want)
		if got := tok.Encode(docs[i].Text); !slices.Equal(got, want) {
			if bad++; bad <= 5 {
				t.Errorf("document %d Encode(%q) =\n  %v\nwant\n  %v", i+1, docs[i].Text, got, want)
			}
		}
		var wantText string
		if err := json.Unmarshal([]byte(decoded[i]), &wantText); err != nil {
			t.Fatalf("%s:%d: %v", decodedPath, i+1, err)
		}
		if got, err := tok.Decode(want); err != nil || got != wantText {
			if badDecode++; badDecode <= 5 {
				t.Errorf("document %d Decode(%v) = %q, %v\nwant %q", i+1, want, got, err, wantText)
			}
		}
	}
	if bad > 0 || badDecode > 0 {
		t.Errorf("%d of %d documents differ, %d decode differently", bad, compared, badDecode)
	}
	batch.check(t, tok)
	t.Logf("%s: %d documents compared", tok.Name(), compared)
}
