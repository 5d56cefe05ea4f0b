// Package tokenizer holds the tokenizers of mdlm, in pure Go: Hugging Face
// tokenizer.json files as the hub's models use them (BPE with byte-level or
// byte_fallback vocabularies, WordPiece, Unigram with SentencePiece's
// Precompiled normalizer, WordLevel; the normalizers, pre-tokenizers with
// their Oniguruma split patterns, added tokens, post-processors and decoders
// of GPT-2, BERT, Llama 2 and 3, Gemma 3, Qwen 3, DeepSeek-V3, GPT-4o, T5,
// XLM-RoBERTa and ALBERT),
// encode, decode and batch encode across cores; plus the text8 character
// tokenizer (spec §5.2) and a bytes tokenizer for small demos. GPT-2 and
// bert-base-uncased are built in.
//
// Encoding is bit-exact with the Hugging Face tokenizers library (tested against
// golden files made with it). A component this package does not implement is an
// error naming it and its JSON path, never a silent fallback.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Tokenizer turns text into token ids and back.
type Tokenizer interface {
	// Name identifies the tokenizer (e.g. "gpt2").
	Name() string
	// Encode returns the ids of text without added special tokens (no BOS/CLS).
	// Literal special tokens in the text (e.g. "<|endoftext|>") map to their ids.
	Encode(text string) []int
	// Decode renders ids as text, special tokens included. An id outside the
	// vocabulary is an error.
	Decode(ids []int) (string, error)
	// VocabSize is the number of ids Decode accepts.
	VocabSize() int
}

// Specials are the ids a model pipeline needs; -1 where a tokenizer has none.
type Specials struct {
	BOS, EOS, PAD, Mask, UNK int
}

// WithSpecials is implemented by tokenizers that know their special ids.
type WithSpecials interface {
	Specials() Specials
}

// AppendEncoder is implemented by tokenizers that can append ids to a caller's
// buffer instead of allocating one per text.
type AppendEncoder interface {
	AppendEncode(out []int, text string) []int
}

// Encode32 appends the ids of text to dst as int32 (the width of token tables),
// using scratch as the intermediate buffer; it returns both for reuse.
func Encode32(t Tokenizer, dst []int32, scratch []int, text string) ([]int32, []int) {
	if a, ok := t.(AppendEncoder); ok {
		scratch = a.AppendEncode(scratch[:0], text)
	} else {
		scratch = t.Encode(text)
	}
	n := len(dst)
	dst = slices.Grow(dst, len(scratch))[:n+len(scratch)]
	out := dst[n:]
	for i, id := range scratch {
		out[i] = int32(id)
	}
	return dst, scratch
}

// ErrUnsupported is wrapped by errors about tokenizer.json components this
// package does not implement.
var ErrUnsupported = fmt.Errorf("tokenizer: unsupported component")

// unsupported is the error for a component or setting this package does not
// implement: it names the JSON path and value in the file and what is
// supported there, and wraps ErrUnsupported. The same file gives the same
// message on every run.
func unsupported(path string, value any, supported string) error {
	v, err := json.Marshal(value)
	if err != nil {
		v = []byte(fmt.Sprint(value))
	}
	return fmt.Errorf("%s %s: %w (supported: %s)", path, v, ErrUnsupported, supported)
}
