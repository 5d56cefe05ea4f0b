package tokenizer

import "fmt"

// Vocab is a tokenizer as an MDLM model sees it (diffusion.py: Diffusion.__init__
// for mask_index, dataloader.py: get_tokenizer for the specials): the model
// vocabulary V (the mask included) and the special ids.
type Vocab struct {
	Tokenizer
	V                   int // model vocabulary, [MASK] included
	Mask, BOS, EOS, PAD int
	maskText, padText   string
}

// ForModel applies the reference's rules: if the tokenizer has no mask token, the
// mask is appended as id vocab_size (V grows by one); BOS falls back to [CLS] and
// EOS to [SEP]; a missing pad is [PAD] at the next id. For GPT-2 that gives
// mask = pad = 50257 (a collision the reference has too, harmless in wrap mode),
// BOS = EOS = 50256 and V = 50258; BERT keeps V = 30522 with [MASK] = 103.
func ForModel(t Tokenizer) (*Vocab, error) {
	v := &Vocab{Tokenizer: t, V: t.VocabSize(), maskText: "[MASK]", padText: "[PAD]"}
	if s, ok := t.(WithSpecials); ok {
		sp := s.Specials()
		v.Mask, v.BOS, v.EOS, v.PAD = sp.Mask, sp.BOS, sp.EOS, sp.PAD
		return v, nil
	}
	hf, ok := t.(*HF)
	if !ok {
		return nil, fmt.Errorf("tokenizer %s: no special-token information", t.Name())
	}
	id := func(names ...string) int {
		for _, n := range names {
			if i, ok := hf.TokenID(n); ok {
				return i
			}
		}
		return -1
	}
	v.BOS = id("<|endoftext|>", "<s>", "[BOS]", "[CLS]")
	v.EOS = id("<|endoftext|>", "</s>", "[EOS]", "[SEP]")
	v.Mask = id("[MASK]", "<mask>")
	v.PAD = id("[PAD]", "<pad>")
	if v.Mask < 0 {
		v.Mask = v.V
		v.V++
	}
	if v.PAD < 0 {
		v.PAD = v.Mask // the reference adds [PAD] at vocab_size, the same id as the mask
	}
	if v.BOS < 0 || v.EOS < 0 {
		return nil, fmt.Errorf("tokenizer %s: no BOS/EOS (or CLS/SEP) token", t.Name())
	}
	return v, nil
}

// Decode renders the ids, with the appended [MASK] id as "[MASK]".
func (v *Vocab) Decode(ids []int) (string, error) {
	base := v.Tokenizer.VocabSize()
	if v.Mask < base {
		return v.Tokenizer.Decode(ids)
	}
	var out []byte
	start := 0
	for i, id := range ids {
		if id == v.Mask {
			s, err := v.Tokenizer.Decode(ids[start:i])
			if err != nil {
				return "", err
			}
			out = append(append(out, s...), v.maskText...)
			start = i + 1
		}
	}
	s, err := v.Tokenizer.Decode(ids[start:])
	if err != nil {
		return "", err
	}
	return string(append(out, s...)), nil
}

// VocabSize is the model vocabulary V.
func (v *Vocab) VocabSize() int { return v.V }
