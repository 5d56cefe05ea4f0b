package tokenizer

import (
	"bytes"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"slices"
)

// Limits on what a tokenizer.json may ask for (issue 19, defect 9). Every id in
// the file is checked against them before anything is sized by it.
const (
	// MaxFileBytes caps the tokenizer.json read by LoadFile and Parse: 64 MiB.
	// The largest real files are a few tens of MiB (GPT-2's is 2 MiB, Llama 3's
	// 9 MiB, Gemma 3's 33 MiB); decoding one costs several times its size.
	MaxFileBytes = 64 << 20
	// MaxTokenID is the absolute cap on any id: ids must be below 2^24
	// (16,777,216), 64 times the largest real vocabularies (about 262k) and still
	// small enough that an embedding table of that many rows is a real model.
	MaxTokenID = 1 << 24
	// IDSlack is how far the largest model id may run past the number of entries:
	// holes are allowed (the Hugging Face BPE and WordPiece models keep their
	// reverse vocabulary in a hash map, tokenizers/src/models/bpe/model.rs
	// BpeBuilder::build), but at most this many, so an id cannot size a table far
	// beyond what the file holds.
	IDSlack = 1024
)

// readCapped reads a whole file, refusing one over MaxFileBytes before and
// while reading (the size from Stat may be stale or absent for a pipe).
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := 0 // a regular file's size: one read fills the buffer
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if st.Size() > MaxFileBytes {
			return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit for a tokenizer.json", path, st.Size(), MaxFileBytes)
		}
		size = int(st.Size())
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if buf.Len() > MaxFileBytes {
		return nil, fmt.Errorf("%s: over the %d-byte limit for a tokenizer.json", path, MaxFileBytes)
	}
	return buf.Bytes(), nil
}

// checkVocabIDs checks the ids of model.vocab and returns the largest: each is
// non-negative (the reference reads them as u32), below MaxTokenID and below
// len(vocab)+IDSlack, and no id belongs to two tokens (the reference's reverse
// map would keep either one, so decoding would depend on hash order).
func checkVocabIDs(vocab map[string]int) (int, error) {
	if len(vocab) == 0 {
		return 0, fmt.Errorf("model.vocab: empty")
	}
	maxID, err := scanVocabIDs(vocab, maps.Keys(vocab))
	if err != nil {
		// Scan again in sorted order so the error names the same token every run.
		_, err = scanVocabIDs(vocab, slices.Values(slices.Sorted(maps.Keys(vocab))))
	}
	return maxID, err
}

func scanVocabIDs(vocab map[string]int, tokens iter.Seq[string]) (int, error) {
	limit := min(len(vocab)+IDSlack, MaxTokenID)
	owner := make([]string, limit) // bounded by the entries the file holds
	owned := make([]bool, limit)
	maxID := -1
	for tok := range tokens {
		id := vocab[tok]
		switch {
		case id < 0:
			return 0, fmt.Errorf("model.vocab[%q]: negative id %d", tok, id)
		case id >= limit:
			return 0, fmt.Errorf("model.vocab[%q]: id %d beyond the vocabulary's %d entries (ids must be below %d)",
				tok, id, len(vocab), limit)
		case owned[id]:
			return 0, fmt.Errorf("model.vocab[%q]: id %d already belongs to %q", tok, id, owner[id])
		}
		owner[id], owned[id] = tok, true
		maxID = max(maxID, id)
	}
	return maxID, nil
}
