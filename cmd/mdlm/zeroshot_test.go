package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/checkpoint"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/hub/hubtest"
)

// zeroShotSets are pipelines/zero-shot.yaml's sets in its file order: the
// paper's Table 3 lines (WikiText as both of the reference's configs).
var zeroShotSets = []string{"ptb", "wikitext2", "wikitext103", "lm1b-gpt2", "lambada", "ag_news",
	"scientific_papers_pubmed", "scientific_papers_arxiv"}

// datasetHub serves dataset repositories as the hub does (tree listing with
// LFS sha256, resolve URLs); every other request (models) goes to next.
type datasetHub struct {
	repos map[string]map[string][]byte // repo -> path -> bytes (revision main)
	next  http.Handler
}

func (h *datasetHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for repo, files := range h.repos {
		if r.URL.Path == "/api/datasets/"+repo+"/tree/main" {
			out := []map[string]any{}
			for p, data := range files {
				sum := sha256.Sum256(data)
				out = append(out, map[string]any{"type": "file", "path": p, "size": len(data),
					"lfs": map[string]any{"oid": hex.EncodeToString(sum[:]), "size": len(data)}})
			}
			json.NewEncoder(w).Encode(out)
			return
		}
		if p, ok := strings.CutPrefix(r.URL.Path, "/datasets/"+repo+"/resolve/main/"); ok {
			if data, ok := files[p]; ok {
				w.Write(data)
				return
			}
			http.NotFound(w, r)
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

// standIn is a small JSON-lines split of a set: docs documents of English
// text in the set's text column.
func standIn(t *testing.T, set, column, split string, docs int) []byte {
	var b bytes.Buffer
	for i := range docs {
		text := fmt.Sprintf("The %s document %d of the %s split of %s says that the river runs past the old mill and on to the sea , where the boats wait .", column, i, split, set)
		line, err := json.Marshal(map[string]string{column: text})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

// zeroShotHub serves stand-ins of every hub set of the registry and a tiny
// GPT-2-vocabulary MDLM checkpoint (org/mdlm-tiny, pushed as a checkpoint/v1);
// LAMBADA, a plain URL in the registry, is put where the download stage keeps
// that URL's file (the hub cache's urls/). It sets HF_ENDPOINT, HF_TOKEN and
// MDLM_CACHE for the test.
func zeroShotHub(t *testing.T, dir string, length int) {
	const token = "hf_zeroshot_test_token"
	models := hubtest.NewPushHub(t, token)
	cfg := backbone.Config{Arch: backbone.DiT, Vocab: 50258, Hidden: 16, Heads: 2, Blocks: 1, Cond: 8, Length: length, MaskIndex: 50257}
	w, err := backbone.NewWeights(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w.Data["output_layer.linear.weight"] { // non-zero, so the loss depends on the text
		w.Data["output_layer.linear.weight"][i] = float32((i*7919)%13-6) * 0.05
	}
	ck := filepath.Join(dir, "tiny-ck")
	if _, err := checkpoint.Save(ck, checkpoint.Config{Model: cfg, Method: checkpoint.DefaultMethod(cfg.Arch), Tokenizer: "gpt2"}, w, artifact.Manifest{}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	filepath.WalkDir(ck, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") { // not the local stat cache
			raw, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(ck, p)
			files[filepath.ToSlash(rel)] = raw
		}
		return err
	})
	models.Repos["org/mdlm-tiny"] = map[string]map[string][]byte{"main": files}

	h := &datasetHub{repos: map[string]map[string][]byte{}, next: models}
	reg := datasets.Registry()
	cache := filepath.Join(dir, "hub-cache")
	for _, name := range zeroShotSets {
		d := reg[name]
		if d.URL != "" {
			os.MkdirAll(filepath.Join(cache, "urls"), 0o755)
			os.WriteFile(filepath.Join(cache, "urls", filepath.Base(d.URL)), standIn(t, name, d.TextColumn, "test", 40), 0o644)
			continue
		}
		if h.repos[d.Repo] == nil {
			h.repos[d.Repo] = map[string][]byte{}
		}
		prefix := ""
		if d.Config != "" {
			prefix = d.Config + "/"
		}
		for _, hubSplit := range d.Splits {
			h.repos[d.Repo][prefix+hubSplit+"-00000-of-00001.jsonl"] = standIn(t, name, d.TextColumn, hubSplit, 40)
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", token)
	t.Setenv("MDLM_CACHE", cache)
}

// Issue 24: pipelines/zero-shot.yaml end to end on stand-ins of its sets
// served by a mock hub and a tiny checkpoint (the vars point it there); `mdlm
// show --rows set --md` prints the paper's Table 3 layout, one line per set
// in the file's order, each with a finite perplexity bound, the same numbers
// as each stage's metrics.json.
func TestZeroShotPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs 32 stages")
	}
	dir := t.TempDir()
	const length = 32
	zeroShotHub(t, dir, length)
	src, err := os.ReadFile(filepath.Join("..", "..", "pipelines", "zero-shot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file, cache := filepath.Join(dir, "zero-shot.yaml"), filepath.Join(dir, "cache")
	os.WriteFile(file, src, 0o644)
	runPipeline(t, file, cache, "--set", "checkpoint=hub:org/mdlm-tiny@main", "--set", "length="+strconv.Itoa(length), "--set", "batch=4")

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"show", file, "--cache-dir", cache, "--rows", "set", "--md"}, &out, &errb); code != 0 {
		t.Fatalf("show: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2+len(zeroShotSets) || lines[0] != "| set | zero-shot: ppl |" {
		t.Fatalf("show --rows set --md:\n%s", out.String())
	}
	lock, err := readLockForTest(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string][]string{}
	for i, set := range zeroShotSets {
		cells := strings.Split(strings.Trim(lines[2+i], "| "), " | ")
		if len(cells) != 2 || cells[0] != set {
			t.Errorf("line %d: %q, want set %s", i, lines[2+i], set)
			continue
		}
		ppl, err := strconv.ParseFloat(cells[1], 64)
		if err != nil || math.IsInf(ppl, 0) || math.IsNaN(ppl) || ppl <= 1 {
			t.Errorf("%s: perplexity %q (%v), want a finite bound above 1", set, cells[1], err)
		}
		var m struct{ PPL json.Number }
		raw, _ := os.ReadFile(filepath.Join(lock["ppl@set="+set], "metrics.json"))
		if err := json.Unmarshal(raw, &m); err != nil || m.PPL.String() != cells[1] {
			t.Errorf("%s: shown %s, metrics.json %s (%v)", set, cells[1], m.PPL, err)
		}
		seen[cells[1]] = append(seen[cells[1]], set)
		checkPreparedAsReference(t, set, lock)
	}
	if len(seen) != len(zeroShotSets) {
		t.Errorf("sets share a perplexity (their stand-ins differ): %v", seen)
	}
}

// zeroShotDetokenizers are the reference's detokenizers per set
// (dataloader.py: get_dataset); AG News has none.
var zeroShotDetokenizers = map[string]string{"ptb": "ptb", "wikitext2": "wikitext", "wikitext103": "wikitext", "lm1b-gpt2": "lm1b",
	"lambada": "lambada", "ag_news": "", "scientific_papers_pubmed": "scientific_papers", "scientific_papers_arxiv": "scientific_papers"}

// checkPreparedAsReference: the set's tokens went through its detokenizer and
// GPT-2's tokenizer, its blocks are wrapped with the remainder dropped per
// 1000 documents (configs/data/<set>.yaml: wrap: True).
func checkPreparedAsReference(t *testing.T, set string, lock map[string]string) {
	t.Helper()
	_, tm, err := artifact.Open[artifact.TokensMeta](lock["tokens@set="+set])
	if err != nil || tm.Tokenizer != "gpt2" || tm.Detokenizer != zeroShotDetokenizers[set] || tm.Dataset != set {
		t.Errorf("%s tokens: %+v (%v), want gpt2 after detokenizer %q", set, tm, err, zeroShotDetokenizers[set])
	}
	_, pm, err := artifact.Open[artifact.PackedMeta](lock["blocks@set="+set])
	if err != nil || pm.Mode != "wrap" || pm.GroupDocs != 1000 || pm.VocabSize != 50258 || pm.Splits["valid"].Blocks == 0 {
		t.Errorf("%s blocks: %+v (%v), want wrap, group-docs 1000, GPT-2's 50258 ids, valid blocks", set, pm, err)
	}
}

// readLockForTest maps each stage of a pipeline's lock file to its output.
func readLockForTest(file string) (map[string]string, error) {
	raw, err := os.ReadFile(file + ".lock.json")
	if err != nil {
		return nil, err
	}
	var lock map[string]struct{ Out string }
	if err := json.Unmarshal(raw, &lock); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range lock {
		out[k] = v.Out
	}
	return out, nil
}
