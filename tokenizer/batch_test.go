package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestBatchChunks(t *testing.T) {
	big := strings.Repeat("x", batchChunkBytes)
	many := make([]string, batchChunkTexts+3)
	cases := []struct {
		name  string
		texts []string
		want  []int
	}{
		{"none", nil, []int{0}},
		{"one small", []string{"a"}, []int{0, 1}},
		{"small ones share a chunk", []string{"a", "b", "c"}, []int{0, 3}},
		{"a big text ends its chunk", []string{"a", big, "b", big}, []int{0, 2, 4}},
		{"a big text alone", []string{big, big, "c"}, []int{0, 1, 2, 3}},
		{"at most batchChunkTexts texts", many, []int{0, batchChunkTexts, batchChunkTexts + 3}},
	}
	for _, c := range cases {
		if got := batchChunks(c.texts); !slices.Equal(got, c.want) {
			t.Errorf("%s: batchChunks = %v, want %v", c.name, got, c.want)
		}
	}
}

// batchTexts is a mix of lengths: empty texts, words, paragraphs and a few
// texts larger than a chunk, with repeated words so the cache is hit.
func batchTexts(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"the", " quick", " brown", " fox", "\n\n", " don't", " 日本語", " émigré", " <|endoftext|>", "  ", "\t", "x"}
	texts := make([]string, n)
	for i := range texts {
		var b strings.Builder
		size := r.IntN(40)
		if r.IntN(50) == 0 {
			size = batchChunkBytes / 2
		}
		for range size {
			b.WriteString(words[r.IntN(len(words))])
			if r.IntN(4) == 0 {
				fmt.Fprintf(&b, " w%d", r.IntN(3000)) // words the cache has not seen
			}
		}
		texts[i] = b.String()
	}
	return texts
}

func TestBatchEncodeMatchesEncode(t *testing.T) {
	gpt2, err := Load("gpt2")
	if err != nil {
		t.Fatal(err)
	}
	toks := map[string]Tokenizer{"gpt2": gpt2, "unigram_bytes": loadCommittedFamily(t, "unigram_bytes"),
		"wordlevel": loadCommittedFamily(t, "wordlevel")}
	texts := batchTexts(600, 7)
	for name, tok := range toks {
		serial := tok.(interface{ Clone() Tokenizer }).Clone()
		want := make([][]int, len(texts))
		for i, s := range texts {
			want[i] = serial.Encode(s)
		}
		for _, workers := range []int{1, 2, 3, 8} {
			got := BatchEncode(tok.(interface{ Clone() Tokenizer }).Clone(), texts, workers)
			for i := range texts {
				if !slices.Equal(got[i], want[i]) {
					t.Fatalf("%s, %d workers: text %d: got %v, want %v", name, workers, i, got[i], want[i])
				}
				if cap(got[i]) != len(got[i]) {
					t.Fatalf("%s: text %d: cap %d > len %d: an append would overwrite the next text", name, i, cap(got[i]), len(got[i]))
				}
			}
		}
	}
}

func TestBatchEncodeEdges(t *testing.T) {
	g, _ := Load("gpt2")
	if got := BatchEncode(g, nil, 4); len(got) != 0 {
		t.Errorf("no texts: %v", got)
	}
	got := BatchEncode(g, []string{"", "a", ""}, 0)
	if len(got) != 3 || len(got[0]) != 0 || len(got[2]) != 0 || !slices.Equal(got[1], g.Encode("a")) {
		t.Errorf("empty texts: %v", got)
	}
	got[0] = append(got[0], 99) // must not write into the next text's ids
	if !slices.Equal(got[1], g.Encode("a")) {
		t.Errorf("append to out[0] changed out[1]: %v", got[1])
	}
}

// encoderless is a Tokenizer without Clone or AppendEncode.
type encoderless struct{}

func (encoderless) Name() string                 { return "len" }
func (encoderless) Encode(s string) []int        { return []int{len(s)} }
func (encoderless) Decode([]int) (string, error) { return "", nil }
func (encoderless) VocabSize() int               { return 1 << 20 }
func TestBatchEncodePlainTokenizer(t *testing.T) {
	texts := batchTexts(300, 3)
	got := BatchEncode(encoderless{}, texts, 2)
	for i, s := range texts {
		if !reflect.DeepEqual(got[i], []int{len(s)}) {
			t.Fatalf("text %d: %v", i, got[i])
		}
	}
}

// TestWorkersShareCache: the encoders Workers returns share one cache (what
// one stores the other finds) and not their scratch.
func TestWorkersShareCache(t *testing.T) {
	g, _ := Load("gpt2")
	encs := Workers(g, 2)
	a, b := encs[0].(*HF), encs[1].(*HF)
	if a.cache != b.cache || a.cache != g.(*HF).cache {
		t.Fatal("workers do not share the tokenizer's cache")
	}
	if a.cw == b.cw {
		t.Fatal("workers share a cache writer")
	}
	a.Encode(" antidisestablishmentarianism")
	if _, ok := b.cache.get(" antidisestablishmentarianism", nil); !ok {
		t.Error("a piece one worker encoded is not in the shared cache")
	}
	if c := g.(*HF).Clone().(*HF); c.cache == a.cache {
		t.Error("Clone shares the cache; it must start a cold one")
	}
}

// cacheIDs is the ids a test stores for a piece: derived from it, so a reader
// can check what it gets.
func cacheIDs(piece string) []int {
	ids := make([]int, len(piece)%7+1)
	for i := range ids {
		ids[i] = int(piece[0])*1000 + len(piece)*10 + i
	}
	return ids
}

func TestPieceCache(t *testing.T) {
	c := newPieceCache(1 << 16)
	w := newCacheWriter()
	const n = 5 * cacheFirstSize // several times past the first table
	for i := range n {
		p := fmt.Sprintf("piece%d", i)
		c.put(w, p, cacheIDs(p))
	}
	if size := len(c.table.Load().slots); size <= cacheFirstSize {
		t.Errorf("table did not grow: %d slots", size)
	}
	for i := range n {
		p := fmt.Sprintf("piece%d", i)
		got, ok := c.get(p, []int{-1})
		if !ok || !slices.Equal(got, append([]int{-1}, cacheIDs(p)...)) {
			t.Fatalf("get(%q) = %v, %v", p, got, ok)
		}
	}
	if _, ok := c.get("absent", nil); ok {
		t.Error("found a piece never stored")
	}
	refused := []struct {
		name  string
		piece string
		ids   []int
	}{
		{"empty piece", "", []int{1}},
		{"piece past maxCachedPiece", strings.Repeat("a", maxCachedPiece+1), []int{1}},
		{"ids past maxCachedIDs", "many", make([]int, maxCachedIDs+1)},
	}
	for _, r := range refused {
		c.put(w, r.piece, r.ids)
		if _, ok := c.get(r.piece, nil); ok {
			t.Errorf("%s: stored", r.name)
		}
	}
	long := strings.Repeat("b", maxCachedPiece)
	c.put(w, long, make([]int, maxCachedIDs))
	if got, ok := c.get(long, nil); !ok || len(got) != maxCachedIDs {
		t.Errorf("the largest record: %d ids, %v", len(got), ok)
	}
}

func TestPieceCacheLimit(t *testing.T) {
	c := newPieceCache(cacheCountBatch)
	w := newCacheWriter()
	for i := range 10 * cacheCountBatch {
		c.put(w, fmt.Sprintf("p%d", i), []int{i})
	}
	stored := 0
	for i := range 10 * cacheCountBatch {
		if _, ok := c.get(fmt.Sprintf("p%d", i), nil); ok {
			stored++
		}
	}
	if stored != cacheCountBatch {
		t.Errorf("stored %d entries, limit %d", stored, cacheCountBatch)
	}
}

// TestPieceCacheConcurrent: writers and readers on one cache (run with -race);
// every piece found has its own ids, however the stores interleave.
func TestPieceCacheConcurrent(t *testing.T) {
	c := newPieceCache(1 << 16)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newCacheWriter()
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range 20000 {
				p := fmt.Sprintf("k%d", r.IntN(8000))
				if got, ok := c.get(p, nil); ok {
					if !slices.Equal(got, cacheIDs(p)) {
						t.Errorf("get(%q) = %v, want %v", p, got, cacheIDs(p))
						return
					}
					continue
				}
				c.put(w, p, cacheIDs(p))
			}
		}()
	}
	wg.Wait()
}

// chainFile chains the pre-tokenizers that keep a buffer per stage of an
// encoder's chain (Split collecting spans, Metaspace) after normalizers on the
// reused buffers.
const chainFile = `{"model":{"type":"WordLevel","unk_token":"<unk>",
 "vocab":{"<unk>":0,"a":1,"b":2,"▁a":3,"ab":4,"▁":5,"▁b":6,"ba":7,"▁ab":8}},
 "normalizer":{"type":"Sequence","normalizers":[{"type":"Lowercase"},
  {"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}]},
 "pre_tokenizer":{"type":"Sequence","pretokenizers":[
  {"type":"Split","pattern":{"Regex":"[a-z]+| "},"behavior":"Removed","invert":true},
  {"type":"Split","pattern":{"String":"b"},"behavior":"MergedWithPrevious","invert":false},
  {"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}]}}`

// FuzzBatchEncode: BatchEncode on 2 workers sharing a cache that lives across
// inputs gives what a fresh encoder gives each text.
func FuzzBatchEncode(f *testing.F) {
	for _, s := range []string{"Hello world\x00don't stop", "日本語\x00\x00 x  y", "<|endoftext|>\x00a\xff"} {
		f.Add(s)
	}
	f.Add("Ünïcode ``Quoted''  Two  Spaces\x00\x00\tTab İ\x00" + strings.Repeat("Long Text ", 30))
	g, _ := Load("gpt2")
	b, _ := Load("bert-base-uncased")
	// ALBERT and BERT run normalizers on the workers' reused buffers
	// (normScratch): each text must come out as from an encoder that saw
	// nothing before it.
	chain, err := Parse([]byte(chainFile), "chain.json")
	if err != nil {
		f.Fatal(err)
	}
	toks := []Tokenizer{g, loadCommittedFamily(f, "unigram_bytes"), loadCommittedFamily(f, "albert"), b, chain}
	f.Fuzz(func(t *testing.T, s string) {
		texts := strings.Split(s, "\x00")
		for _, tok := range toks {
			got := BatchEncode(tok, texts, 2)
			for i, text := range texts {
				fresh := tok.(interface{ Clone() Tokenizer }).Clone()
				if want := fresh.Encode(text); !slices.Equal(got[i], want) {
					t.Fatalf("%s: text %d %q: batch %v, alone %v", tok.Name(), i, text, got[i], want)
				}
			}
		}
	})
}

func TestLargestFirst(t *testing.T) {
	texts := []string{"aa", strings.Repeat("b", batchChunkBytes), "c", strings.Repeat("d", 2*batchChunkBytes), "e"}
	bounds := batchChunks(texts) // [0 2 4 5]: "aa" and big b, "c" and bigger d, "e"
	if got, want := largestFirst(texts, bounds), []int{1, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("largestFirst = %v, want %v (chunks %v)", got, want, bounds)
	}
}
