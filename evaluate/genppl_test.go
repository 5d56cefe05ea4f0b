package evaluate

import (
	"math"
	"reflect"
	"testing"

	"github.com/mdlm-go/mdlm/datasets"
)

func TestGenPPLWeights(t *testing.T) {
	// x = [a, EOS, b, EOS, EOS(pad)]: targets 1..4; the first EOS counts, later ones do not.
	got := GenPPLWeights([]int{7, 9, 8, 9, 9}, 9)
	if want := []float64{0, 1, 1, 0, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	if h := SampleEntropy([]int32{1, 1, 2, 3}); math.Abs(h-(-(0.5*math.Log(0.5) + 2*0.25*math.Log(0.25)))) > 1e-12 {
		t.Errorf("entropy %v", h)
	}
}

// The entropies sum over token ids in a fixed order, so a metrics.json is the
// same file on every run (a sum in map order differed in the last bits).
func TestEntropiesAreDeterministic(t *testing.T) {
	var ids []int32
	for v := int32(0); v < 300; v++ {
		for k := int32(0); k <= v%7; k++ {
			ids = append(ids, v*31%1009)
		}
	}
	var blocks [][]int32
	for lo := 0; lo < len(ids); lo += 14 {
		blocks = append(blocks, ids[lo:min(lo+14, len(ids))])
	}
	data := packedSplit(t, blocks, 16, datasets.Specials{BOS: 1008, EOS: 1008})
	wantH, wantU := SampleEntropy(ids), UnigramPPL(data, data.NumRows())
	for i := 0; i < 30; i++ {
		if h := SampleEntropy(ids); math.Float64bits(h) != math.Float64bits(wantH) {
			t.Fatalf("SampleEntropy: %v, then %v", wantH, h)
		}
		if u := UnigramPPL(data, data.NumRows()); math.Float64bits(u) != math.Float64bits(wantU) {
			t.Fatalf("UnigramPPL: %v, then %v", wantU, u)
		}
	}
}
