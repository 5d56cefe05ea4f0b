package tokenizer

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Limits of the byte-level BPE trainer (`mdlm tokenizer train`, the
// train-tokenizer stage).
const (
	// MaxTrainVocab caps --vocab-size: 2^20 ids, four times the largest real
	// vocabularies, far below MaxTokenID.
	MaxTrainVocab = 1 << 20
	// MaxTrainWordBytes: a pre-token longer than this (a run of one class, e.g.
	// a base64 blob) is left out of the counts; it would cost its length at
	// every merge that touches it and teaches nothing a vocabulary can hold.
	MaxTrainWordBytes = 1 << 10
	// MaxTrainSpecials caps the special tokens (--special).
	MaxTrainSpecials = 1 << 10
)

// TrainConfig are the settings of TrainBPE, as in Hugging Face's BpeTrainer
// (tokenizers/src/models/bpe/trainer.rs) used with the ByteLevel pre-tokenizer.
type TrainConfig struct {
	VocabSize    int      // total ids: specials, the 256 byte symbols, then merges
	Special      []string // added first, ids 0..len-1, special:true
	MinFrequency int64    // a pair seen fewer times is never merged (0 and 1: every pair)
	Workers      int      // counting goroutines (0: GOMAXPROCS); never changes the result
}

// Validate checks the bounds of the configuration.
func (c TrainConfig) Validate() error {
	if c.VocabSize < len(c.Special)+256 || c.VocabSize > MaxTrainVocab {
		return fmt.Errorf("vocab size %d: want %d (specials + 256 bytes) to %d", c.VocabSize, len(c.Special)+256, MaxTrainVocab)
	}
	if len(c.Special) > MaxTrainSpecials {
		return fmt.Errorf("%d special tokens: at most %d", len(c.Special), MaxTrainSpecials)
	}
	seen := map[string]bool{}
	for i, s := range c.Special {
		if s == "" || seen[s] {
			return fmt.Errorf("special token %d %q: empty or repeated", i, s)
		}
		seen[s] = true
	}
	if c.MinFrequency < 0 {
		return fmt.Errorf("min frequency %d: negative", c.MinFrequency)
	}
	return nil
}

// WordCounts counts the byte-level pre-tokens (GPT-2's split regex, as the
// ByteLevel pre-tokenizer with use_regex applies it) of a corpus. Add may be
// called with batches of documents in any order: the counts are sums, so the
// result never depends on the batching or the number of workers.
type WordCounts struct {
	special []string
	counts  map[string]int64
}

// NewWordCounts returns empty counts; text equal to a special token is cut out
// of documents before splitting (an added token is never part of a word).
func NewWordCounts(special []string) *WordCounts {
	return &WordCounts{special: special, counts: map[string]int64{}}
}

// Len is the number of distinct words.
func (w *WordCounts) Len() int { return len(w.counts) }

// Add counts the words of docs on up to workers goroutines (0: GOMAXPROCS).
// No word kept refers to the memory of docs.
func (w *WordCounts) Add(docs []string, workers int) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(docs)))
	parts := make([]tally, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := tally{index: map[string]int32{}}
			for i := k; i < len(docs); i += workers {
				countDoc(&t, docs[i], w.special)
			}
			parts[k] = t
		}()
	}
	wg.Wait()
	for _, t := range parts {
		for s, i := range t.index { // s is the tally's own copy
			w.counts[s] += t.counts[i]
		}
	}
}

// tally counts the words of one goroutine: a word's count is
// counts[index[word]]. A word goes into the map once, as a copy, and is only
// looked up afterwards: assigning to a string key already in a Go map stores
// the key given in place of the one there, so `m[w]++` would keep the document
// (or the page of a shard) that w is cut from alive for as long as the map.
type tally struct {
	index  map[string]int32
	counts []int64
}

func (t *tally) add(w string) {
	if i, ok := t.index[w]; ok {
		t.counts[i]++
		return
	}
	t.index[strings.Clone(w)] = int32(len(t.counts))
	t.counts = append(t.counts, 1)
}

// countDoc adds the pre-tokens of doc (split around special tokens) to t.
func countDoc(t *tally, doc string, special []string) {
	for doc != "" {
		cut, skip := len(doc), 0
		for _, s := range special {
			if i := strings.Index(doc[:cut], s); i >= 0 && i < cut {
				cut, skip = i, len(s)
			}
		}
		countWords(t, doc[:cut])
		if cut == len(doc) {
			return
		}
		doc = doc[cut+skip:]
	}
}

// countWords adds the GPT-2 pre-tokens of s to t (bytelevel.go: nextPreToken).
func countWords(t *tally, s string) {
	for i := 0; i < len(s); {
		j := nextPreToken(s, i)
		if j <= i { // never: nextPreToken always advances; guard against a loop
			j = i + 1
		}
		if w := s[i:j]; len(w) <= MaxTrainWordBytes {
			t.add(w)
		}
		i = j
	}
}

// TrainedBPE is a byte-level BPE vocabulary learned by TrainBPE.
type TrainedBPE struct {
	Special []string    // ids 0..len(Special)-1
	Tokens  []string    // every token by id, byte-level characters (specials as written)
	Merges  [][2]string // in rank order
}

// trainPair packs the two symbol ids of an adjacent pair.
type trainPair uint64

func mkPair(a, b int32) trainPair     { return trainPair(uint64(uint32(a))<<32 | uint64(uint32(b))) }
func (p trainPair) ids() (a, b int32) { return int32(uint32(p >> 32)), int32(uint32(p)) }

// trainWord is one distinct word: its symbols and how often it occurs.
type trainWord struct {
	syms  []int32
	count int64
}

// trainer holds the incremental state of TrainBPE.
type trainer struct {
	words  []trainWord
	counts map[trainPair]int64
	where  map[trainPair][]int32 // words that held the pair when it was counted up (may repeat, may be stale)
	heap   pairHeap
	stamp  []int32 // per word: the merge that last visited it
}

// TrainBPE learns a byte-level BPE from word counts, as Hugging Face's
// BpeTrainer::do_train (tokenizers/src/models/bpe/trainer.rs) with
// initial_alphabet = ByteLevel::alphabet(): the specials take the first ids,
// then the 256 byte characters in code-point order, then one token per merge
// of the most frequent adjacent pair (ties: the smallest pair of ids, as the
// reference's Merge ordering), until the vocabulary is full or the best pair
// is rarer than MinFrequency. A merge whose string is already a token reuses
// its id. The result depends only on the counts.
func TrainBPE(wc *WordCounts, cfg TrainConfig) (*TrainedBPE, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := &TrainedBPE{Special: slices.Clone(cfg.Special), Tokens: slices.Clone(cfg.Special)}
	index := map[string]int32{}
	for i, s := range cfg.Special {
		index[s] = int32(i)
	}
	var byteID [256]int32
	alphabet := make([]int, 256)
	for b := range 256 {
		alphabet[b] = b
	}
	slices.SortFunc(alphabet, func(x, y int) int { return int(byteToRune[x] - byteToRune[y]) })
	for _, b := range alphabet {
		s := string(byteToRune[b])
		if id, ok := index[s]; ok { // a special spelled as one byte character
			byteID[b] = id
			continue
		}
		byteID[b] = int32(len(out.Tokens))
		index[s] = byteID[b]
		out.Tokens = append(out.Tokens, s)
	}
	t := newTrainer(wc, &byteID)
	minFreq := max(cfg.MinFrequency, 1)
	for len(out.Tokens) < cfg.VocabSize {
		p, n, ok := t.best()
		if !ok || n < minFreq {
			break
		}
		a, b := p.ids()
		s := out.Tokens[a] + out.Tokens[b]
		id, ok := index[s]
		if !ok {
			id = int32(len(out.Tokens))
			index[s] = id
			out.Tokens = append(out.Tokens, s)
		}
		out.Merges = append(out.Merges, [2]string{out.Tokens[a], out.Tokens[b]})
		t.merge(p, id, int32(len(out.Merges)))
	}
	return out, nil
}

// newTrainer turns the words into byte symbols (sorted, so ids of words and the
// order of every later step are fixed) and counts their pairs.
func newTrainer(wc *WordCounts, byteID *[256]int32) *trainer {
	keys := make([]string, 0, len(wc.counts))
	for s := range wc.counts {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	t := &trainer{words: make([]trainWord, len(keys)), counts: map[trainPair]int64{},
		where: map[trainPair][]int32{}, stamp: make([]int32, len(keys))}
	for w, s := range keys {
		syms := make([]int32, len(s))
		for i := range len(s) {
			syms[i] = byteID[s[i]]
		}
		t.words[w] = trainWord{syms: syms, count: wc.counts[s]}
		t.addPairs(int32(w), +1)
	}
	for p, n := range t.counts {
		if n > 0 {
			t.heap = append(t.heap, heapItem{pair: p, count: n})
		}
	}
	t.heap.init()
	return t
}

// addPairs adds (sign +1) or removes (-1) the pairs of word w from the counts;
// adding records w as a holder of each pair.
func (t *trainer) addPairs(w int32, sign int64) {
	wd := &t.words[w]
	for i := 0; i+1 < len(wd.syms); i++ {
		p := mkPair(wd.syms[i], wd.syms[i+1])
		t.counts[p] += sign * wd.count
		if sign > 0 {
			t.where[p] = append(t.where[p], w)
		}
	}
}

// best pops the most frequent pair whose heap count is current.
func (t *trainer) best() (trainPair, int64, bool) {
	for len(t.heap) > 0 {
		it := t.heap.pop()
		if n := t.counts[it.pair]; n == it.count && n > 0 {
			return it.pair, n, true
		}
	}
	return 0, 0, false
}

// merge replaces pair p by id in every word holding it (left to right, no
// overlaps, as Word::merge in the reference) and updates the pair counts: a
// changed word's pairs are removed and re-added, and every pair whose count
// changed goes back on the heap with its new count (older entries go stale).
func (t *trainer) merge(p trainPair, id, step int32) {
	a, b := p.ids()
	changed := map[trainPair]bool{}
	for _, w := range t.where[p] {
		if t.stamp[w] == step {
			continue
		}
		t.stamp[w] = step
		syms := t.words[w].syms
		if !hasPair(syms, a, b) {
			continue
		}
		for i := 0; i+1 < len(syms); i++ {
			changed[mkPair(syms[i], syms[i+1])] = true
		}
		t.addPairs(w, -1)
		t.words[w].syms = replacePair(syms, a, b, id)
		t.addPairs(w, +1)
		syms = t.words[w].syms
		for i := 0; i+1 < len(syms); i++ {
			changed[mkPair(syms[i], syms[i+1])] = true
		}
	}
	delete(t.where, p)
	for q := range changed {
		if n := t.counts[q]; n > 0 {
			t.heap.push(heapItem{pair: q, count: n})
		} else {
			delete(t.counts, q)
			delete(t.where, q)
		}
	}
}

func hasPair(syms []int32, a, b int32) bool {
	for i := 0; i+1 < len(syms); i++ {
		if syms[i] == a && syms[i+1] == b {
			return true
		}
	}
	return false
}

// replacePair merges every non-overlapping (a, b), scanning left to right, in place.
func replacePair(syms []int32, a, b, id int32) []int32 {
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			out = append(out, id)
			i++
			continue
		}
		out = append(out, syms[i])
	}
	return out
}

// heapItem is a pair with its count when pushed.
type heapItem struct {
	pair  trainPair
	count int64
}

// pairHeap is a max-heap: the higher count first, then the smaller pair.
type pairHeap []heapItem

func (h pairHeap) before(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].pair < h[j].pair
}

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(it heapItem) {
	*h = append(*h, it)
	h.up(len(*h) - 1)
}

func (h *pairHeap) pop() heapItem {
	old := *h
	top := old[0]
	n := len(old) - 1
	old[0] = old[n]
	*h = old[:n]
	h.down(0)
	return top
}

func (h pairHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.before(i, p) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h.before(r, l) {
			c = r
		}
		if !h.before(c, i) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// JSON renders the vocabulary as a tokenizer.json that Hugging Face tokenizers
// and tokenizer.Parse load alike: model BPE (merges as "a b" strings, no unk,
// no dropout), the ByteLevel pre-tokenizer (GPT-2's regex, no prefix space),
// the ByteLevel decoder and post-processor (as GPT-2's file), and the specials
// as added tokens (special, not normalized).
func (m *TrainedBPE) JSON() ([]byte, error) {
	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	addedTokens := make([]added, len(m.Special))
	for i, s := range m.Special {
		addedTokens[i] = added{ID: i, Content: s, Special: true}
	}
	vocab := make(orderedVocab, len(m.Tokens))
	copy(vocab, m.Tokens)
	merges := make([]string, len(m.Merges))
	for i, mg := range m.Merges {
		merges[i] = mg[0] + " " + mg[1]
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   addedTokens,
		"normalizer":     nil,
		"pre_tokenizer":  byteLevel,
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil,
			"continuing_subword_prefix": nil, "end_of_word_suffix": nil, "fuse_unk": false,
			"byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
	}
	return json.MarshalIndent(doc, "", " ")
}

// orderedVocab marshals tokens by id as a JSON object in id order (a map would
// be sorted by key; id order makes the file readable and diffable).
type orderedVocab []string

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	var sb strings.Builder
	sb.WriteByte('{')
	for id, tok := range v {
		if id > 0 {
			sb.WriteByte(',')
		}
		k, err := json.Marshal(tok)
		if err != nil {
			return nil, fmt.Errorf("vocab token %d: %w", id, err)
		}
		sb.Write(k)
		fmt.Fprintf(&sb, ":%d", id)
	}
	sb.WriteByte('}')
	return []byte(sb.String()), nil
}
