package datasets

import (
	"fmt"
	"path/filepath"

	"github.com/mdlm-go/mdlm/artifact"
)

// Read-side checks of packed/v1 data (issue 19, defect 10): a split with no
// blocks made training divide by zero, and a token id outside the vocabulary
// made the backend's gather and scatter panic or an evaluation report +Inf.

// Path is the file the blocks were mapped from.
func (p *PackedArrow) Path() string { return p.path }

// CheckIDs scans every block once and returns an error naming the file, the
// block, the position and the id of the first token outside [0, vocab).
func (p *PackedArrow) CheckIDs(vocab int) error {
	for _, b := range p.batches {
		for i, id := range b.ids {
			if id < 0 || int(id) >= vocab {
				return fmt.Errorf("%s: block %d, position %d: token id %d is outside the vocabulary [0, %d)",
					p.path, b.start+i/p.L, i%p.L, id, vocab)
			}
		}
	}
	return nil
}

// OpenPackedSplit opens "<split>.arrow" of the packed/v1 artifact dir whose
// metadata is meta and checks it before anything trusts it: at least one block,
// the block length the manifest states, and every token id within vocab_size.
func OpenPackedSplit(dir, split string, meta artifact.PackedMeta) (*PackedArrow, error) {
	p, err := OpenPackedArrow(filepath.Join(dir, split+".arrow"))
	if err != nil {
		return nil, err
	}
	if err := p.check(split, meta); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *PackedArrow) check(split string, meta artifact.PackedMeta) error {
	if p.rows == 0 {
		return fmt.Errorf("%s: split %q has no blocks (its documents hold fewer tokens than one block of length %d): "+
			"pack more text or a shorter --length", p.path, split, meta.Length)
	}
	if p.L != meta.Length {
		return fmt.Errorf("%s: blocks of %d tokens, but the artifact's manifest says length %d", p.path, p.L, meta.Length)
	}
	return p.CheckIDs(meta.VocabSize)
}
