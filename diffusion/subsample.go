package diffusion

import (
	"fmt"
	"math/rand/v2"
)

// cropStream separates the crop's draws from the noise of the same batch
// (PCG(seed, k)) and from the data order (PCG(seed, epoch + 2^40)).
const cropStream = 1 << 62

// CropStart is the crop's start for batch k of a run seeded by seed: uniform
// in [0, L) as the reference's np.random.choice(model.length), and a function
// of (seed, k) alone so that a resumed run crops as an uninterrupted one.
func CropStart(seed int64, k, L int) int {
	return rand.New(rand.NewPCG(uint64(seed), uint64(k)|cropStream)).IntN(L)
}

// Crop is one random crop of rows twice the model's length, text8-crop's
// training data (diffusion.py: _maybe_sub_sample): every row of the batch is
// cut at the same start, drawn once per batch in [0, L).
type Crop struct {
	L        int   // the model length; rows hold 2L tokens
	BOS, EOS int32 // put at the crop's first position (and, for AR, last target)
}

// Apply crops the B rows of x0 (and their token mask), each of 2L tokens, at
// start. For a diffusion model a row becomes x0[start : start+L] with position 0
// set to BOS. For an AR model (ar) it becomes the L+1 tokens whose first L are
// that input and whose last L are the targets x0[start+1 : start+L+1] with the
// last one set to EOS, so that ARPerTokenLoss's input x[:, :-1] and target
// x[:, 1:] are the reference's input_tokens and output_tokens; the token mask
// of the targets is mask[start : start+L], as the reference's
// new_attention_mask. It returns the new rows, mask and row length.
func (c Crop) Apply(x0 []int32, mask []float32, B, start int, ar bool) ([]int32, []float32, int, error) {
	L := c.L
	if L <= 0 || B <= 0 || len(x0) != B*2*L || len(mask) != len(x0) {
		return nil, nil, 0, fmt.Errorf("crop: %d tokens and %d mask entries for %d rows, want rows of 2 x %d", len(x0), len(mask), B, L)
	}
	if start < 0 || start >= L {
		return nil, nil, 0, fmt.Errorf("crop: start %d outside [0, %d)", start, L)
	}
	width := L
	if ar {
		width = L + 1
	}
	outX, outM := make([]int32, B*width), make([]float32, B*width)
	for b := 0; b < B; b++ {
		src, dst := x0[b*2*L:(b+1)*2*L], outX[b*width:(b+1)*width]
		srcM, dstM := mask[b*2*L:(b+1)*2*L], outM[b*width:(b+1)*width]
		copy(dst, src[start:start+width])
		dst[0] = c.BOS
		if ar {
			dst[L] = c.EOS
			copy(dstM[1:], srcM[start:start+L]) // the targets' mask; position 0 is never a target
			dstM[0] = srcM[start]
		} else {
			copy(dstM, srcM[start:start+L])
		}
	}
	return outX, outM, width, nil
}
