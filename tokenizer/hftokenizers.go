//go:build hftokenizers

package tokenizer

// The optional Hugging Face tokenizers backend (Rust, through
// github.com/daulet/tokenizers). It needs libtokenizers.a from that project's
// releases or `make build` in its repository (a Rust toolchain); build with
//
//	CGO_LDFLAGS="-L/path/to/dir/with/libtokenizers.a" go build -tags hftokenizers ./...
//
// and load a file with LoadRust. The pure-Go tokenizers of this package are the
// default and are bit-exact with it on the golden files.

import (
	"fmt"

	hf "github.com/daulet/tokenizers"
)

// Rust wraps a daulet/tokenizers tokenizer as a Tokenizer.
type Rust struct {
	name string
	tk   *hf.Tokenizer
}

// LoadRust loads a tokenizer.json with the Rust library.
func LoadRust(path string) (*Rust, error) {
	tk, err := hf.FromFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s (hftokenizers): %w", path, err)
	}
	return &Rust{name: path, tk: tk}, nil
}

// Name is the file it was loaded from.
func (r *Rust) Name() string { return r.name }

// Encode encodes without post-processor specials.
func (r *Rust) Encode(text string) []int {
	ids, _ := r.tk.Encode(text, false)
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// Decode decodes with special tokens kept.
func (r *Rust) Decode(ids []int) (string, error) {
	u := make([]uint32, len(ids))
	for i, id := range ids {
		if id < 0 || id >= r.VocabSize() {
			return "", fmt.Errorf("tokenizer %s: decode: id %d outside the vocabulary [0, %d)", r.name, id, r.VocabSize())
		}
		u[i] = uint32(id)
	}
	return r.tk.Decode(u, false), nil
}

// VocabSize is the library's vocabulary size.
func (r *Rust) VocabSize() int { return int(r.tk.VocabSize()) }

// Close frees the Rust tokenizer.
func (r *Rust) Close() error { return r.tk.Close() }
