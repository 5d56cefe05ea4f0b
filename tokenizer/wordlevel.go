package tokenizer

import (
	"encoding/json"
	"fmt"
)

// wordLevel is the WordLevel model (tokenizers/src/models/wordlevel/mod.rs):
// each pre-token is one vocabulary entry, or the unk token.
type wordLevel struct {
	vocab   map[string]int
	idToTok []string
	present []bool
	unk     int
}

// newWordLevel reads model.vocab and model.unk_token (default "<unk>"). The
// unk token must be in the vocabulary: the reference fails to encode any word
// outside it otherwise.
func newWordLevel(rawVocab json.RawMessage, unkToken *string) (*wordLevel, error) {
	var vocab map[string]int
	if err := json.Unmarshal(rawVocab, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	maxID, err := checkVocabIDs(vocab)
	if err != nil {
		return nil, err
	}
	unk := "<unk>"
	if unkToken != nil {
		unk = *unkToken
	}
	unkID, ok := vocab[unk]
	if !ok {
		return nil, fmt.Errorf("%w: model.unk_token %q is not in model.vocab: the reference tokenizers library fails to encode any word outside the vocabulary (supported: an unk_token of the vocabulary)", ErrUnsupported, unk)
	}
	w := &wordLevel{vocab: vocab, idToTok: make([]string, maxID+1), present: make([]bool, maxID+1), unk: unkID}
	for tok, id := range vocab {
		w.idToTok[id], w.present[id] = tok, true
	}
	return w, nil
}

func (w *wordLevel) encode(s string, out []int) []int {
	if id, ok := w.vocab[s]; ok {
		return append(out, id)
	}
	return append(out, w.unk)
}
