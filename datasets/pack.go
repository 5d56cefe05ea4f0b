package datasets

import "fmt"

// Specials are the ids packing inserts.
type Specials struct{ BOS, EOS, PAD int32 }

// WrapOptions configure wrap mode (dataloader.py: get_dataset with wrap,
// _group_texts).
type WrapOptions struct {
	Length int // L: every block is [BOS] + L−2 tokens + [EOS]
	// GroupDocs reproduces the reference's datasets.map batching: documents are
	// concatenated per group of GroupDocs (1000 in the reference) and each group's
	// remainder (fewer than L−2 tokens) is dropped. 0 (the default) concatenates
	// the whole stream and drops only the final remainder.
	GroupDocs int
}

// Wrapper packs documents into fixed blocks, streaming: feed documents in order
// with Add, then Flush.
type Wrapper struct {
	opts   WrapOptions
	sp     Specials
	buf    []int32 // pending tokens (each document followed by EOS)
	docs   int     // documents in the current group
	emit   func(PackedRow) error
	block  []int32 // the block handed to emit, reused
	mask   []int8  // L ones, shared by every block
	Blocks int     // blocks emitted
	// Dropped counts tokens left out (group remainders and the final remainder).
	Dropped int
}

// NewWrapper returns a packer calling emit for each block. The row passed to
// emit is only valid during the call (its buffers are reused): copy to keep it.
func NewWrapper(opts WrapOptions, sp Specials, emit func(PackedRow) error) (*Wrapper, error) {
	if opts.Length < 3 {
		return nil, fmt.Errorf("pack: --length %d must be at least 3 (BOS, a token, EOS)", opts.Length)
	}
	return &Wrapper{opts: opts, sp: sp, emit: emit, block: make([]int32, opts.Length), mask: ones(opts.Length)}, nil
}

// Add appends one document (its ids without specials) and an EOS.
func (w *Wrapper) Add(ids []int32) error {
	w.buf = append(w.buf, ids...)
	w.buf = append(w.buf, w.sp.EOS)
	w.docs++
	if w.opts.GroupDocs > 0 {
		if w.docs == w.opts.GroupDocs {
			return w.cut(true)
		}
		return nil
	}
	return w.cut(false)
}

// cut emits every full block; with endGroup the remainder is dropped.
func (w *Wrapper) cut(endGroup bool) error {
	n := w.opts.Length - 2
	i := 0
	for ; i+n <= len(w.buf); i += n {
		w.block[0] = w.sp.BOS
		copy(w.block[1:], w.buf[i:i+n])
		w.block[n+1] = w.sp.EOS
		if err := w.emit(PackedRow{InputIDs: w.block, AttentionMask: w.mask}); err != nil {
			return err
		}
		w.Blocks++
	}
	rest := copy(w.buf, w.buf[i:])
	w.buf = w.buf[:rest]
	if endGroup {
		w.Dropped += len(w.buf)
		w.buf = w.buf[:0]
		w.docs = 0
	}
	return nil
}

// Flush ends the stream: the final partial group is cut like any group, and the
// leftover tokens (fewer than L−2) are dropped.
func (w *Wrapper) Flush() error {
	if err := w.cut(true); err != nil {
		return err
	}
	return nil
}

func ones(n int) []int8 {
	m := make([]int8, n)
	for i := range m {
		m[i] = 1
	}
	return m
}

// PadBlock is the non-wrap mode of the reference (LM1B with BERT): [BOS] + ids
// + [EOS], truncated to L (the specials kept, the text cut), padded on the right
// with PAD; the attention mask marks the real tokens.
func PadBlock(ids []int32, L int, sp Specials) PackedRow {
	body := ids
	if len(body) > L-2 {
		body = body[:L-2]
	}
	row := PackedRow{InputIDs: make([]int32, L), AttentionMask: make([]int8, L)}
	row.InputIDs[0] = sp.BOS
	copy(row.InputIDs[1:], body)
	row.InputIDs[1+len(body)] = sp.EOS
	for i := range row.InputIDs {
		if i < len(body)+2 {
			row.AttentionMask[i] = 1
		} else {
			row.InputIDs[i] = sp.PAD
		}
	}
	return row
}
