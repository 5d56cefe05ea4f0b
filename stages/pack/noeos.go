package pack

import (
	"fmt"

	"github.com/mdlm-go/mdlm/datasets"
)

// NoEOSParam is the packed/v1 params key that marks blocks packed with
// --no-eos (present only then, so other artifacts keep their manifests).
const NoEOSParam = "no_eos"

// packer is what packSplit feeds a wrap-mode split's documents to: the
// reference's wrapping (datasets.Wrapper), or blocks without per-block
// specials (--no-eos).
type packer interface {
	Add(ids []int32) error
	Flush() error
	dropped() int
}

// wrapPacker is datasets.Wrapper as a packer.
type wrapPacker struct{ *datasets.Wrapper }

func (w wrapPacker) dropped() int { return w.Dropped }

// plainPacker is BD3-LM's wrap mode without per-block specials
// (kuleshov-group/bd3lms dataloader.py: _group_texts with
// insert_special_tokens=False, the train set's insert_eos=True): every
// document followed by EOS, the stream cut into blocks of L tokens with no BOS
// or EOS inserted at the cuts, so a long document continues across blocks as
// it is. groupDocs drops each group's remainder as datasets.Wrapper does.
type plainPacker struct {
	L, groupDocs int
	eos          int32
	buf          []int32 // pending tokens
	docs         int     // documents in the current group
	mask         []int8  // L ones, shared by every block
	emit         func(datasets.PackedRow) error
	nDropped     int
}

func newPlainPacker(L, groupDocs int, eos int32, emit func(datasets.PackedRow) error) (*plainPacker, error) {
	if L < 1 {
		return nil, fmt.Errorf("pack --no-eos: --length %d must be at least 1", L)
	}
	mask := make([]int8, L)
	for i := range mask {
		mask[i] = 1
	}
	return &plainPacker{L: L, groupDocs: groupDocs, eos: eos, mask: mask, emit: emit}, nil
}

// Add appends one document and its EOS, emitting every full block (or, with
// groupDocs, every block of a finished group).
func (p *plainPacker) Add(ids []int32) error {
	p.buf = append(append(p.buf, ids...), p.eos)
	p.docs++
	if p.groupDocs > 0 {
		if p.docs < p.groupDocs {
			return nil
		}
		return p.cut(true)
	}
	return p.cut(false)
}

// cut emits every full block; with endGroup the remainder is dropped.
func (p *plainPacker) cut(endGroup bool) error {
	i := 0
	for ; i+p.L <= len(p.buf); i += p.L {
		if err := p.emit(datasets.PackedRow{InputIDs: p.buf[i : i+p.L], AttentionMask: p.mask}); err != nil {
			return err
		}
	}
	p.buf = p.buf[:copy(p.buf, p.buf[i:])]
	if endGroup {
		p.nDropped += len(p.buf)
		p.buf, p.docs = p.buf[:0], 0
	}
	return nil
}

// Flush ends the stream, dropping the last remainder (fewer than L tokens).
func (p *plainPacker) Flush() error { return p.cut(true) }

func (p *plainPacker) dropped() int { return p.nDropped }
