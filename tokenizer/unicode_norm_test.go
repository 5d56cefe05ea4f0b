package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// normProbes are the strings built around code point s.
func normProbes(s string) []string {
	return []string{"x" + s + "x", "a\u0301" + s + "\u0316\u0334x", s + "\u0301", "e" + s, s + s + "\u0300"}
}

// TestUnicodeNormOracle compares the four normalizers with Hugging Face
// tokenizers on every code point that has normalization data in Go's tables
// (five probe strings each). It runs node on testdata/norm_probe.js with the
// oracle that gen_goldens.sh installs, and skips without them.
func TestUnicodeNormOracle(t *testing.T) {
	mods := nodeOracle(t)
	var cands []string
	for r := rune(0); r <= 0x10FFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		s := string(r)
		p := norm.NFKD.PropertiesString(s)
		if p.CCC() != 0 || len(p.Decomposition()) > 0 || !norm.NFC.PropertiesString(s).BoundaryAfter() ||
			norm.NFC.String("a"+s) != "a"+s || norm.NFC.String(s+"\u0301") != s+"\u0301" {
			cands = append(cands, fmt.Sprint(int(r)))
		}
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "cands.txt"), filepath.Join(dir, "hf.json")
	writeFile(t, in, []byte(strings.Join(cands, "\n")+"\n"))
	var rows [][]json.RawMessage
	runOracle(t, mods, "norm_probe.js", out, &rows, in, out)
	forms := []normalizer{unicodeNormalizer("NFC"), unicodeNormalizer("NFD"), unicodeNormalizer("NFKC"), unicodeNormalizer("NFKD")}
	var bad []rune
	for _, row := range rows {
		var c rune
		var want [][]string
		if json.Unmarshal(row[0], &c) != nil || json.Unmarshal(row[1], &want) != nil {
			t.Fatal("bad row")
		}
		for i, p := range normProbes(string(c)) {
			for j, f := range forms {
				if got := f.normalize(p); got != want[i][j] {
					if len(bad) < 8 {
						t.Errorf("U+%04X form %d: %+q -> %+q, reference %+q", c, j, p, got, want[i][j])
					}
					bad = append(bad, c)
				}
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d differences over %d code points; first at U+%04X", len(bad), len(rows), bad[0])
		if path := os.Getenv("MDLM_NORM_DIFF"); path != "" {
			var sb strings.Builder
			for _, r := range bad {
				fmt.Fprintf(&sb, "%d\n", r)
			}
			os.WriteFile(path, []byte(sb.String()), 0o644)
		}
	}
}

// TestComposeRoundTrip: composing the NFD of every Unicode 9.0 primary
// composite gives it back (the pair table is complete and right).
func TestComposeRoundTrip(t *testing.T) {
	bad := 0
	for _, c := range compositionPairs() {
		if got := composeCanonical(norm.NFD.String(string(c))); got != string(c) {
			if bad++; bad <= 5 {
				t.Errorf("compose(NFD(U+%04X)) = %+q", c, got)
			}
		}
	}
	if got := unicodeNormalizer("NFC").normalize("\U00010041\u0301"); got != "\U00010041\u0301" {
		t.Errorf("NFC(U+10041 U+0301) = %+q: x/text's key collision", got)
	}
}
