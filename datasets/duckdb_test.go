package datasets

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDuckDBReadsOurParquet reads our tokens and packed Parquet files with an
// independent reader, DuckDB (npm @duckdb/node-api, installed into the user cache
// on first use), and checks row counts, token counts and a checksum of the ids.
func TestDuckDBReadsOurParquet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the DuckDB interop check")
	}
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("node/npm not installed: DuckDB interop check skipped")
	}
	cache, _ := os.UserCacheDir()
	prefix := filepath.Join(cache, "mdlm-test-npm")
	if _, err := os.Stat(filepath.Join(prefix, "node_modules", "@duckdb", "node-api")); err != nil {
		out, err := exec.Command(npm, "install", "--silent", "--prefix", prefix, "@duckdb/node-api").CombinedOutput()
		if err != nil {
			t.Fatalf("npm install @duckdb/node-api: %v\n%s", err, out)
		}
	}
	script := filepath.Join(prefix, "duckdb_check.mjs") // beside node_modules so the import resolves
	src, _ := os.ReadFile("testdata/duckdb_check.mjs")
	os.WriteFile(script, src, 0o644)

	dir := t.TempDir()
	var tokRows []TokensRow
	var packed []PackedRow
	wantSum, wantTokens := int64(0), int64(0)
	for i := 0; i < 3000; i++ {
		ids := make([]int32, i%17)
		for j := range ids {
			ids[j] = int32((i*31 + j*7) % 50257)
			wantSum += int64(ids[j])
		}
		wantTokens += int64(len(ids))
		tokRows = append(tokRows, TokensRow{ID: int64(i), IDs: ids})
		packed = append(packed, PadBlock(ids, 20, Specials{BOS: 1, EOS: 2, PAD: 0}))
	}
	// The production writers: token shards and packed blocks (delta-encoded mask).
	if err := WriteTokensParquet(filepath.Join(dir, "tokens.parquet"), tokRows); err != nil {
		t.Fatal(err)
	}
	w, err := NewPackedWriter(dir, "packed", 20)
	if err != nil {
		t.Fatal(err)
	}
	var maskSum int64
	for _, r := range packed {
		w.Write(r)
		for _, m := range r.AttentionMask {
			maskSum += int64(m)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	run := func(file, col string) (rows, sum, tokens int64) {
		out, err := exec.Command(node, script, file, col).CombinedOutput()
		if err != nil {
			t.Fatalf("duckdb on %s: %v\n%s", file, err, out)
		}
		var r struct{ Rows, Sum, Tokens int64 }
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("duckdb output %q: %v", out, err)
		}
		return r.Rows, r.Sum, r.Tokens
	}
	if rows, sum, tokens := run(filepath.Join(dir, "tokens.parquet"), "ids"); rows != 3000 || sum != wantSum || tokens != wantTokens {
		t.Errorf("DuckDB read tokens: rows %d sum %d tokens %d, want 3000 %d %d", rows, sum, tokens, wantSum, wantTokens)
	}
	var packedSum int64
	for _, r := range packed {
		for _, x := range r.InputIDs {
			packedSum += int64(x)
		}
	}
	packedFile := filepath.Join(dir, "packed-00000.parquet")
	if rows, sum, tokens := run(packedFile, "input_ids"); rows != 3000 || sum != packedSum || tokens != 3000*20 {
		t.Errorf("DuckDB read packed: rows %d sum %d tokens %d, want 3000 %d %d", rows, sum, tokens, packedSum, 3000*20)
	}
	if rows, sum, _ := run(packedFile, "attention_mask"); rows != 3000 || sum != maskSum {
		t.Errorf("DuckDB read the attention mask: rows %d sum %d, want 3000 %d", rows, sum, maskSum)
	}
}
