package tokenizer

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// trainCorpus returns the documents of testdata/corpus.jsonl.gz (prose, code
// and hard cases) split into a training part and a held-out part.
func trainCorpus(t testing.TB) (train, held []string) {
	for i, line := range readGzipLines(t, filepath.Join("testdata", "corpus.jsonl.gz")) {
		var d struct{ Text string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("corpus line %d: %v", i+1, err)
		}
		if i%5 == 4 {
			held = append(held, d.Text)
		} else {
			train = append(train, d.Text)
		}
	}
	return train, held
}

func trainOn(t testing.TB, docs []string, cfg TrainConfig) *TrainedBPE {
	wc := NewWordCounts(cfg.Special)
	wc.Add(docs, cfg.Workers)
	m, err := TrainBPE(wc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTrainBPESmall checks the merges on a corpus small enough to do by hand:
// the most frequent pair first, ties to the smallest ids, specials first.
// The counts keep no memory of the documents: texts cut from one buffer (as
// a Parquet page's texts are) leave it collectable once counted, even when a
// word is seen again after its first count (a Go map assignment to a string
// key in it stores the key given).
func TestWordCountsKeepNoDocument(t *testing.T) {
	wc := NewWordCounts(nil)
	freed := make(chan struct{})
	func() {
		page := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 1<<12))
		runtime.AddCleanup(&page[0], func(ch chan struct{}) { close(ch) }, freed)
		text := unsafe.String(&page[0], len(page))
		var docs []string
		for i := 0; i+45 <= len(text); i += 45 {
			docs = append(docs, text[i:i+45])
		}
		wc.Add(docs, 2)
		wc.Add(docs[:10], 1)
	}()
	for i := 0; i < 20; i++ {
		runtime.GC()
		select {
		case <-freed:
			if got := wc.counts[" fox"]; got != 4106 {
				t.Errorf(`count of " fox" = %d, want 4106`, got)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the documents' buffer is still reachable after counting: a word refers to it")
}

func TestTrainBPESmall(t *testing.T) {
	m := trainOn(t, []string{"aaab ab ab"}, TrainConfig{VocabSize: 2 + 256 + 3, Special: []string{"<s>", "</s>"}})
	if !slices.Equal(m.Tokens[:2], []string{"<s>", "</s>"}) || len(m.Tokens) != 261 {
		t.Fatalf("tokens: %d, first %q", len(m.Tokens), m.Tokens[:2])
	}
	// Words: "aaab" once, " ab" twice. Pairs: (Ġ,a) 2, (a,b) 3, (a,a) 2.
	// 1: (a,b) -> "ab". Then (Ġ,ab) 2 and (a,a) 1, (a,ab) 1: 2: "Ġab". 3: (a,a)
	// vs (a,ab) tie at 1: "a"<"ab" by id, so "aa".
	want := [][2]string{{"a", "b"}, {"Ġ", "ab"}, {"a", "a"}}
	if !slices.Equal(m.Merges, want) {
		t.Fatalf("merges %q, want %q", m.Merges, want)
	}
	if got := m.Tokens[258:]; !slices.Equal(got, []string{"ab", "Ġab", "aa"}) {
		t.Fatalf("new tokens %q", got)
	}
}

func TestTrainBPEMinFrequencyAndLimits(t *testing.T) {
	m := trainOn(t, []string{"hello hello hello world"}, TrainConfig{VocabSize: 1000, MinFrequency: 3})
	for _, mg := range m.Merges {
		if strings.Contains(mg[0]+mg[1], "w") {
			t.Errorf("merge %q from a word seen once, min frequency 3", mg)
		}
	}
	if len(m.Merges) == 0 {
		t.Fatal("no merges of hello")
	}
	for _, cfg := range []TrainConfig{
		{VocabSize: 255},
		{VocabSize: MaxTrainVocab + 1},
		{VocabSize: 300, Special: []string{"x", "x"}},
		{VocabSize: 300, Special: []string{""}},
		{VocabSize: 300, MinFrequency: -1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: accepted", cfg)
		}
	}
}

// TestTrainBPEDeterministic: the same vocabulary whatever the batching and
// the number of workers.
func TestTrainBPEDeterministic(t *testing.T) {
	docs, _ := trainCorpus(t)
	cfg := TrainConfig{VocabSize: 2000, Special: []string{"<|endoftext|>"}, Workers: 1}
	ref, err := trainOn(t, docs, cfg).JSON()
	if err != nil {
		t.Fatal(err)
	}
	wc := NewWordCounts(cfg.Special)
	wc.Add(docs[len(docs)/2:], 2)
	wc.Add(docs[:len(docs)/2], 3)
	cfg.Workers = 4
	m, err := TrainBPE(wc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.JSON()
	if !bytes.Equal(ref, got) {
		t.Fatal("vocabulary depends on batching or workers")
	}
}

// TestTrainBPERoundTrip: mdlm loads the file it wrote, the vocabulary is
// full, merges shorten the text, specials map to their ids and every
// held-out text decodes back to itself.
func TestTrainBPERoundTrip(t *testing.T) {
	train, held := trainCorpus(t)
	m := trainOn(t, train, TrainConfig{VocabSize: 3000, Special: []string{"<|endoftext|>", "[MASK]"}})
	data, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(data, "trained")
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 3000 {
		t.Fatalf("vocab size %d, want 3000", tok.VocabSize())
	}
	var nbytes, nids int
	for i, s := range held {
		ids := tok.Encode(s)
		got, err := tok.Decode(ids)
		if err != nil || got != s {
			t.Fatalf("held-out doc %d: decode(encode) = %q, %v", i, got, err)
		}
		nbytes, nids = nbytes+len(s), nids+len(ids)
	}
	if float64(nbytes)/float64(nids) < 1.4 { // bytes alone: 1.0; the corpus has CJK and emoji
		t.Errorf("%.2f bytes a token on held-out text: merges not applied", float64(nbytes)/float64(nids))
	}
	if ids := tok.Encode("a<|endoftext|>b[MASK]"); len(ids) != 4 || ids[1] != 0 || ids[3] != 1 {
		t.Errorf("specials: %v", ids)
	}
	v, err := ForModel(tok)
	if err != nil || v.Mask != 1 || v.EOS != 0 || v.V != 3000 {
		t.Errorf("ForModel: %+v, %v", v, err)
	}
}

// TestTrainBPEOracle trains on the corpus, then compares mdlm's ids with
// Hugging Face tokenizers' (npm, the oracle gen_goldens.sh installs) for the
// written file on the held-out documents. Skips without node or the oracle.
func TestTrainBPEOracle(t *testing.T) {
	mods := nodeOracle(t)
	train, held := trainCorpus(t)
	held = append(held, "<|endoftext|>x  y\n\n\tz<|endoftext|>", "   ", "don't 'll 2024年 🤗🤗 a\u0301")
	m := trainOn(t, train, TrainConfig{VocabSize: 4000, Special: []string{"<|endoftext|>", "<pad>"}, MinFrequency: 2})
	data, err := m.JSON()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file, texts, out := filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "texts.json"), filepath.Join(dir, "hf.json")
	tj, _ := json.Marshal(held)
	writeFile(t, file, data)
	writeFile(t, texts, tj)
	var hf struct {
		Vocab int
		Docs  []struct {
			IDs  []int
			Text string
		}
	}
	runOracle(t, mods, "train_oracle.js", out, &hf, file, texts, out)
	tok, err := Parse(data, "trained")
	if err != nil {
		t.Fatal(err)
	}
	if hf.Vocab != tok.VocabSize() || len(hf.Docs) != len(held) {
		t.Fatalf("HF: vocab %d, %d docs; mdlm: vocab %d, %d docs", hf.Vocab, len(hf.Docs), tok.VocabSize(), len(held))
	}
	bad := 0
	for i, s := range held {
		ids := tok.Encode(s)
		if !slices.Equal(ids, hf.Docs[i].IDs) {
			if bad++; bad <= 3 {
				t.Errorf("doc %d %.60q: mdlm %v, HF %v", i, s, head(ids), head(hf.Docs[i].IDs))
			}
			continue
		}
		if dec, _ := tok.Decode(ids); dec != hf.Docs[i].Text {
			t.Errorf("doc %d: decode mdlm %.60q, HF %.60q", i, dec, hf.Docs[i].Text)
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d held-out docs differ", bad, len(held))
	}
	t.Logf("%d held-out docs exact", len(held))
}

func head(ids []int) []int { return ids[:min(len(ids), 12)] }
