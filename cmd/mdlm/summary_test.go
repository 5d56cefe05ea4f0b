package main

import (
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/datasets"
	"github.com/mdlm-go/mdlm/internal/stagetest"
	"github.com/mdlm-go/mdlm/pipeline"
)

func TestBitsPerByte(t *testing.T) {
	for _, c := range []struct {
		nats, tokens float64
		bytes        int64
		want         float64
	}{
		{math.Ln2, 100, 100, 1},           // one bit a token, a byte a token
		{math.Ln2, 100, 400, 0.25},        // BPE: four bytes a token
		{2.3045, 165568, 165568, 3.32469}, // the byte-level demo, specials aside
		{0, 10, 10, 0},
	} {
		if got := bitsPerByte(c.nats, c.tokens, c.bytes); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("bitsPerByte(%v, %v, %v) = %v, want %v", c.nats, c.tokens, c.bytes, got, c.want)
		}
	}
}

func TestWordShare(t *testing.T) {
	x := newWordIndex()
	x.add("In the beginning God created the heaven and the earth.")
	x.add("And the LORD's word came.")
	for _, c := range []struct {
		text string
		want wordShare
	}{
		{"the heaven and the earth", wordShare{Words: 5, KnownWords: 5, Pairs: 4, KnownPairs: 4}},
		{"The EARTH, created; God!", wordShare{Words: 4, KnownWords: 4, Pairs: 3, KnownPairs: 1}}, // "the earth"
		{"arl bus the ptheetsdhire lord's", wordShare{Words: 5, KnownWords: 2, Pairs: 4, KnownPairs: 0}},
		{"And the", wordShare{Words: 2, KnownWords: 2, Pairs: 1, KnownPairs: 1}},
		{"  12 , ;", wordShare{}},
	} {
		if got := x.share(c.text); got != c.want {
			t.Errorf("share(%q) = %+v, want %+v", c.text, got, c.want)
		}
	}
}

// The index keeps its own copies of the words: documents cut from one buffer
// (already in lower case, so lower-casing returns them as they are) leave it
// collectable once indexed.
func TestWordIndexKeepsNoDocument(t *testing.T) {
	x := newWordIndex()
	freed := make(chan struct{})
	func() {
		page := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 1000))
		runtime.AddCleanup(&page[0], func(ch chan struct{}) { close(ch) }, freed)
		text := unsafe.String(&page[0], len(page))
		for i := 0; i+45 <= len(text); i += 45 {
			x.add(text[i : i+45])
		}
	}()
	for range 20 {
		runtime.GC()
		select {
		case <-freed:
			if got := x.share("the lazy fox"); got != (wordShare{Words: 3, KnownWords: 3, Pairs: 2, KnownPairs: 1}) {
				t.Errorf("share = %+v after the documents were freed", got)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the documents' buffer is still reachable after indexing: a word refers to it")
}

// corpusIndex reads the train split's shards of a text/v1 artifact, not the
// valid split's.
func TestCorpusIndex(t *testing.T) {
	dir := t.TempDir()
	for name, texts := range map[string][]string{
		datasets.ShardName("train", 0, 2): {"In the beginning", "God created"},
		datasets.ShardName("train", 1, 2): {"the heaven and the earth."},
		datasets.ShardName("valid", 0, 1): {"unseen words"},
	} {
		rows := make([]datasets.TextRow, len(texts))
		for i, text := range texts {
			rows[i] = datasets.TextRow{ID: int64(i), Text: text}
		}
		if err := datasets.WriteParquet(filepath.Join(dir, name), rows, 8); err != nil {
			t.Fatal(err)
		}
	}
	x := corpusIndex(dir)
	if x == nil {
		t.Fatal("no index")
	}
	want := wordShare{Words: 6, KnownWords: 4, Pairs: 5, KnownPairs: 2} // the heaven, god created
	if got := x.share("the heaven unseen words god created"); got != want {
		t.Errorf("share = %+v, want %+v", got, want)
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"eval", "--data=/a/b", "--split=valid", "--datax=no"}
	if got := flagValue(args, "--data"); got != "/a/b" {
		t.Errorf("--data = %q", got)
	}
	if got := flagValue(args, "--model"); got != "" {
		t.Errorf("--model = %q", got)
	}
}

// TestEvaluatedBytes: the bytes of PackedArtifact's valid blocks are the 14
// text bytes between BOS and EOS of each; fewer blocks count fewer bytes; a
// decision without --data has none.
func TestEvaluatedBytes(t *testing.T) {
	dir := stagetest.PackedArtifact(t)
	d := pipeline.Decision{Stage: "ppl", Args: []string{"eval", "--data=" + dir, "--split=valid"}}
	n, all, err := evaluatedBytes(d, "valid", 1<<30)
	if err != nil || !all {
		t.Fatal(err, all)
	}
	_, meta, err := artifact.Open[artifact.PackedMeta](dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := datasets.OpenPackedSplit(dir, "valid", meta)
	if err != nil {
		t.Fatal(err)
	}
	blocks := p.NumRows()
	p.Close()
	if blocks == 0 || n != int64(14*blocks) {
		t.Errorf("%d bytes over %d blocks, want 14 a block", n, blocks)
	}
	if n3, _, _ := evaluatedBytes(d, "valid", 3); n3 != 42 {
		t.Errorf("3 blocks: %d bytes, want 42", n3)
	}
	if _, _, err := evaluatedBytes(pipeline.Decision{Stage: "x"}, "valid", 3); err == nil {
		t.Error("no --data: no error")
	}
}
