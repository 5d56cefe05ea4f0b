package sampler

import (
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
)

// pickProb is rows[i, tok[i]]: rows [k, V], tok [k] int32 -> [k].
func pickProb(rows, tok *Node) *Node {
	dims := rows.Shape().Dimensions
	onehot := Equal(Iota(rows.Graph(), shapes.Make(dtypes.Int32, dims...), 1), BroadcastToDims(ExpandAxes(tok, -1), dims...))
	return ReduceSum(Where(onehot, rows, ZerosLike(rows)), -1)
}

// lowConfidenceUpdate is a ddpm-family step with confidence-ordered
// unmasking (MaskGIT, LLaDA's remasking="low_confidence"). How many positions
// of a row unmask is drawn exactly as the reference's update draws it (each
// masked position leaves [MASK] with probability (mc_t − mc_s)/mc_t, the
// host draws of twoStageUpdate); which ones is decided by confidence: every
// masked position of the row draws a candidate token from its (tempered,
// top-p) distribution, and the positions whose candidates are the most
// probable under it take them.
func (s *Sampler) lowConfidenceUpdate(opts Options, tokens []int32, probs *tensors.Tensor, mct, mcs float32, B, L int) ([]int32, error) {
	mask := int32(s.model.Backbone.MaskIndex)
	leave := float64(mct-mcs) / float64(mct)
	count := make([]int, B)
	for i, tok := range tokens {
		if tok == mask && s.hostRNG.Float64() < leave {
			count[i/L]++
		}
	}
	var pos []int32 // every masked position of the rows that unmask some
	for b := 0; b < B; b++ {
		if count[b] == 0 {
			continue
		}
		for i := b * L; i < (b+1)*L; i++ {
			if tokens[i] == mask {
				pos = append(pos, int32(i))
			}
		}
	}
	next := append([]int32(nil), tokens...)
	if len(pos) == 0 {
		return next, nil
	}
	picked, conf, err := s.pick(opts, probs, pos, true)
	if err != nil {
		return nil, err
	}
	for _, j := range mostConfident(pos, conf[:len(pos)], count, L) {
		next[pos[j]] = picked[j]
	}
	return next, nil
}

// mostConfident returns the indices into pos of the count[b] most confident
// positions of each row b (pos are flat b·L + l, grouped by row in order);
// ties go to the earlier position.
func mostConfident(pos []int32, conf []float64, count []int, L int) []int {
	var chosen []int
	for start := 0; start < len(pos); {
		b := int(pos[start]) / L
		end := start
		for end < len(pos) && int(pos[end])/L == b {
			end++
		}
		order := make([]int, end-start)
		for i := range order {
			order[i] = start + i
		}
		sort.SliceStable(order, func(i, j int) bool { return conf[order[i]] > conf[order[j]] })
		chosen = append(chosen, order[:min(count[b], len(order))]...)
		start = end
	}
	return chosen
}
