package download

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub"
)

// fakeHub serves repo's files and counts the downloads of each.
func fakeHub(t *testing.T, repo string, files map[string][]byte) (*hub.Client, func(string) int) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/datasets/"+repo+"/tree/main":
			var out []map[string]any
			for p, data := range files {
				sum := sha256.Sum256(data)
				out = append(out, map[string]any{"type": "file", "path": p, "size": len(data),
					"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}})
			}
			json.NewEncoder(w).Encode(out)
		case strings.HasPrefix(r.URL.Path, "/datasets/"+repo+"/resolve/main/"):
			p := strings.TrimPrefix(r.URL.Path, "/datasets/"+repo+"/resolve/main/")
			data, ok := files[p]
			if !ok {
				http.NotFound(w, r)
				return
			}
			mu.Lock()
			got[p]++
			mu.Unlock()
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("HF_ENDPOINT", srv.URL)
	c := hub.NewClient()
	c.Backoff = time.Millisecond
	return c, func(p string) int { mu.Lock(); defer mu.Unlock(); return got[p] }
}

func parquetOf(t *testing.T, prefix string, n int) []byte {
	t.Helper()
	var rows []datasets.TextRow
	for i := range n {
		rows = append(rows, datasets.TextRow{ID: int64(i), Text: fmt.Sprintf("%s %d", prefix, i)})
	}
	p := filepath.Join(t.TempDir(), "x.parquet")
	if err := datasets.WriteParquet(p, rows, 16); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSplitsDownloadsOnlyWhatIsAsked: --splits valid on ag_news (train and
// test on the hub) fetches the test file only and publishes one split.
func TestSplitsDownloadsOnlyWhatIsAsked(t *testing.T) {
	const trainFile, testFile = "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"
	c, downloads := fakeHub(t, "fancyzhx/ag_news", map[string][]byte{
		trainFile: parquetOf(t, "train", 50), testFile: parquetOf(t, "test", 20)})
	out := filepath.Join(t.TempDir(), "ag")
	if _, err := run(Options{Dataset: "ag_news", Splits: []string{"valid"}, Out: out, Client: c, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if downloads(trainFile) != 0 || downloads(testFile) != 1 {
		t.Errorf("downloads: train %d, test %d; want 0 and 1", downloads(trainFile), downloads(testFile))
	}
	if valid := readSplit(t, out, "valid"); len(valid) != 20 || valid[0].Text != "test 0" {
		t.Errorf("valid: %d rows, want the 20 test documents", len(valid))
	}
	if files, _ := datasets.Shards(out, "train"); len(files) != 0 {
		t.Errorf("a train split was published: %v", files)
	}
	// Without --splits: both.
	out2 := filepath.Join(t.TempDir(), "ag2")
	if _, err := run(Options{Dataset: "ag_news", Out: out2, Client: c, CacheDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if n := len(readSplit(t, out2, "train")); n != 50 {
		t.Errorf("train without --splits: %d rows, want 50", n)
	}
}

func TestSplitsChecked(t *testing.T) {
	reg := datasets.Registry()
	cases := []struct {
		name, dataset string
		splits        []string
		wantErr       string
	}{
		{"unknown split", "ag_news", []string{"test"}, `"test" is not one of its splits (train, valid)`},
		{"held-out valid", "openwebtext-split", []string{"valid"}, ""},
		{"kept only valid", "openwebtext-valid", []string{"train"}, `"train" is not one of its splits (valid)`},
		{"text8 ranges", "text8", []string{"valid"}, ""},
		{"all", "wikitext2", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkSplits(reg[c.dataset], c.splits)
			if (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("checkSplits(%s, %v) = %v, want %q", c.dataset, c.splits, err, c.wantErr)
			}
		})
	}
	if _, err := run(Options{Sources: []string{"x.txt"}, Splits: []string{"valid"}, Out: filepath.Join(t.TempDir(), "o")}); err == nil || !strings.Contains(err.Error(), "--splits") {
		t.Errorf("--splits with local sources: err = %v", err)
	}
}

// TestRestrictPlanHoldOut: asking for valid of a held-out dataset still reads
// train (valid is its tail) but publishes valid only.
func TestRestrictPlanHoldOut(t *testing.T) {
	d := datasets.Registry()["openwebtext-split"]
	plan := restrictPlan([]splitPlan{{split: "train", holdOut: 10}}, d, []string{"valid"})
	if len(plan) != 1 || !slices.Equal(plan[0].keep, []string{"valid"}) {
		t.Errorf("plan %+v, want train read with keep [valid]", plan)
	}
	wiki := datasets.Registry()["wikitext2"]
	plan = restrictPlan([]splitPlan{{split: "train"}, {split: "valid"}}, wiki, []string{"valid"})
	if len(plan) != 1 || plan[0].split != "valid" {
		t.Errorf("plan %+v, want the valid split only", plan)
	}
}
