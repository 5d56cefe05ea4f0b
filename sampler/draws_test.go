package sampler

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/internal/layers"
)

// repeatRows returns n copies of the probability row p as [1, n, len(p)].
func repeatRows(p []float32, n int) *tensors.Tensor {
	all := make([]float32, 0, n*len(p))
	for i := 0; i < n; i++ {
		all = append(all, p...)
	}
	return tensors.FromFlatDataAndDimensions(all, 1, n, len(p))
}

// Top-p never draws outside the nucleus, counted over 8,000 draws per
// update path and precision, and inside it draws the renormalised
// probabilities (within 5 standard deviations). p has a nucleus of {0, 1, 2}
// at P = 0.75: the tokens ranked above 2 hold 0.65 < 0.75, those above 3
// hold 0.8.
func TestTopPNeverLeavesTheNucleus(t *testing.T) {
	b, _ := backend.Shared()
	const n, V = 8000, 8
	m, w := tinyModel(t, 8)
	m.Backbone.Vocab, m.Backbone.MaskIndex = V, V-1
	p := []float32{0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.02, 0}
	want := []float64{0.5, 0.3125, 0.1875}
	paths := []struct {
		name   string
		update func(s *Sampler, o Options) ([]int32, error)
	}{
		{"two-stage", func(s *Sampler, o Options) ([]int32, error) {
			return s.twoStageUpdate(o, masks(n, V-1), repeatRows(p, n), 1, 0, 1, n)
		}},
		{"dense", func(s *Sampler, o Options) ([]int32, error) {
			return s.denseUpdate(o, masks(n, V-1), repeatRows(p, n), 1, 0, 1, n, V, V-1)
		}},
		{"low-confidence", func(s *Sampler, o Options) ([]int32, error) {
			return s.lowConfidenceUpdate(o, masks(n, V-1), repeatRows(p, n), 1, 0, 1, n)
		}},
	}
	for _, path := range paths {
		for _, prec := range Precisions {
			s, err := New(b, m, w, 5, nil)
			if err != nil {
				t.Fatal(err)
			}
			next, err := path.update(s, Options{TopP: 0.75, Draws: prec})
			if err != nil {
				t.Fatalf("%s %s: %v", path.name, prec, err)
			}
			counts := make([]float64, V)
			for _, tok := range next {
				counts[tok]++
			}
			for v, c := range counts {
				if v >= len(want) && c > 0 {
					t.Errorf("%s %s: token %d outside the nucleus drawn %d times", path.name, prec, v, int(c))
				}
				if v < len(want) {
					got, sd := c/n, math.Sqrt(want[v]*(1-want[v])/n)
					if math.Abs(got-want[v]) > 5*sd {
						t.Errorf("%s %s: token %d frequency %.4f, want %.4f (sd %.4f)", path.name, prec, v, got, want[v], sd)
					}
				}
			}
			t.Logf("%s %s: counts %v", path.name, prec, counts)
		}
	}
}

// The ar sampler with top-p: every token it draws is in the nucleus of the
// model's distribution after its prefix (re-scored), over 64 rows.
func TestARTopPStaysInTheNucleus(t *testing.T) {
	b, _ := backend.Shared()
	const B, L, V, topP = 64, 6, 24, 0.5
	cfg := backbone.Config{Arch: backbone.AR, Vocab: V, Hidden: 16, Heads: 2, Blocks: 1, Length: L, MaskIndex: V - 1}
	w, _ := backbone.NewWeights(cfg, 5)
	for i := range w.Data["output_layer.linear.weight"] {
		w.Data["output_layer.linear.weight"][i] = float32((i*7919)%13-6) * 0.1
	}
	m := diffusion.Model{Backbone: cfg, Param: diffusion.ARP}
	for _, prec := range Precisions {
		s, _ := New(b, m, w, 3, nil)
		x := masks(B*L, V-1)
		for r := 0; r < B; r++ {
			x[r*L] = 3
		}
		res, err := s.Sample(context.Background(), Options{Kind: AR, TopP: topP, Draws: prec}, x, B, L, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.call("ar_logits", func(p backbone.Params, in []*Node) []*Node {
			return []*Node{Softmax(backbone.Forward(cfg, p, s.invFreq, in[0], nil, layers.Inference, nil), -1)}
		}, tensors.FromFlatDataAndDimensions(res.Tokens, B, L))
		if err != nil {
			t.Fatal(err)
		}
		probs := tensors.MustCopyFlatData[float32](out[0])
		outside := 0
		for r := 0; r < B; r++ {
			for i := 0; i < L-1; i++ {
				row := probs[(r*L+i)*V : (r*L+i+1)*V]
				if !inNucleus(row, int(res.Tokens[r*L+i+1]), topP) {
					outside++
				}
			}
		}
		if outside > 0 {
			t.Errorf("%s: %d of %d tokens outside the nucleus", prec, outside, B*(L-1))
		}
	}
}

// inNucleus says whether token v is among the smallest set of most probable
// tokens of row whose mass reaches topP (a tie at the threshold included),
// with a little slack for the float32 rounding of the two computations.
func inNucleus(row []float32, v int, topP float64) bool {
	above := 0.0
	for _, p := range row {
		if p > row[v] {
			above += float64(p)
		}
	}
	return above < topP+1e-5
}

// emulated uniform draws: GoMLX's RandomUniform turns random bits into floats
// (ops_random.go): float32(uint32)·2^-32 and float64(uint64)·2^-64, each
// clamped below 1.
func uniform32(bits uint32) float32 {
	return min(float32(bits)*float32(1.0/(1<<32)), math.Nextafter32(1, 0))
}

func uniform64(bits uint64) float64 {
	return min(float64(bits)*math.Pow(2, -64), math.Nextafter(1, 0))
}

// tailFrequency estimates how often _sample_categorical's exponential race,
// in the given precision, picks a tail token of normalised probability pt
// against a head of probability ph: the tail's uniform is drawn from the top
// 2^-k of the generator's bits (where alone it can win; the test checks
// that below it the head always wins), the head's from all of them, n draws
// of the real graph (drawNode). It returns the frequency and its standard
// error.
func tailFrequency(t *testing.T, prec Precision, ph, pt float32, k, n int, rng *rand.Rand) (float64, float64) {
	t.Helper()
	b, _ := backend.Shared()
	exec, err := NewExec(b, func(w, u *Node) *Node { return drawNode(w, u) })
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 0, 2*n)
	for i := 0; i < n; i++ {
		w = append(w, ph, pt)
	}
	var u *tensors.Tensor
	if prec == Float32 {
		us := make([]float32, 0, 2*n)
		for i := 0; i < n; i++ {
			us = append(us, uniform32(rng.Uint32()), uniform32(math.MaxUint32-uint32(rng.Uint64N(1<<(32-k)))))
		}
		u = tensors.FromFlatDataAndDimensions(us, n, 2)
	} else {
		us := make([]float64, 0, 2*n)
		for i := 0; i < n; i++ {
			us = append(us, uniform64(rng.Uint64()), uniform64(math.MaxUint64-rng.Uint64N(1<<(64-k))))
		}
		u = tensors.FromFlatDataAndDimensions(us, n, 2)
	}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(w, n, 2), u)
	if err != nil {
		t.Fatal(err)
	}
	wins := 0
	for _, v := range tensors.MustCopyFlatData[int32](out[0]) {
		wins += int(v)
	}
	eps := math.Pow(2, -float64(k))
	q := float64(wins) / float64(n)
	return eps * q, eps * math.Sqrt(q*(1-q)/float64(n))
}

// tailStratum returns k such that below the top 2^-k of the uniforms the tail
// (probability pt, head ph) can never win in either precision: there −log u
// is at least about 2^-k, so the tail needs the head's −log u above
// 2^-k·ph/pt, beyond its largest value 1e-10 − log(1e-10) ≈ 23.03.
func tailStratum(ph, pt float64) int {
	k := int(math.Floor(-math.Log2(25 * pt / ph)))
	if 0.9*math.Pow(2, -float64(k))*ph/pt <= 1e-10-math.Log(1e-10) {
		panic(fmt.Sprintf("stratum 2^-%d too small for pt %g", k, pt))
	}
	return k
}

// Float64 draws reach the tail, float32 draws do not: the frequency of a tail
// token of probability 1e-6 ... 1e-9 against one head token, under the
// reference's float32 draws and the float64 ones. Float64 matches the
// probability at every level (within 5 standard errors); float32 falls short
// by more than 5 standard errors from 1e-7 down (a float32 uniform is never
// above 1 − 2^-24, so −log u never below about 6e-8). bench/README.md,
// "Float64 draws", has the table this logs.
func TestFloat64DrawsReachTheTail(t *testing.T) {
	const n = 1 << 18
	rng := rand.New(rand.NewPCG(1, 2))
	var table strings.Builder
	table.WriteString("| tail probability | float32 draws | float64 draws |\n|---|---|---|\n")
	for _, r := range []float64{1e-6, 1e-7, 1e-8, 1e-9} {
		ph, pt := float32(1/(1+r)), float32(r/(1+r))
		want := float64(pt) / (float64(pt) + float64(ph))
		k := tailStratum(float64(ph), float64(pt))
		f32, se32 := tailFrequency(t, Float32, ph, pt, k, n, rng)
		f64, se64 := tailFrequency(t, Float64, ph, pt, k, n, rng)
		fmt.Fprintf(&table, "| %.0e | %.3g ± %.1g (%.2f×) | %.3g ± %.1g (%.2f×) |\n", want, f32, se32, f32/want, f64, se64, f64/want)
		if math.Abs(f64-want) > 5*se64 {
			t.Errorf("p %.0e: float64 frequency %.4g ± %.2g", want, f64, se64)
		}
		if r <= 1e-7 && want-f32 < 5*se32 {
			t.Errorf("p %.0e: float32 frequency %.4g ± %.2g: expected the tail cut", want, f32, se32)
		}
	}
	t.Logf("tail frequencies (%d stratified draws per cell):\n%s", n, table.String())
}

// The in-graph float64 generator has float64 resolution: almost none of its
// draws is a float32 value (a float32 generator's all are).
func TestFloat64UniformsAreNotFloat32(t *testing.T) {
	b, _ := backend.Shared()
	const n = 1 << 16
	rng, _ := RNGStateFromSeed(7)
	for _, prec := range Precisions {
		exec, err := NewExec(b, func(state *Node) *Node {
			_, u := uniforms(state, prec.dtype(), n)
			return ConvertDType(u, dtypes.Float64)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call(rng)
		if err != nil {
			t.Fatal(err)
		}
		onGrid := 0
		for _, u := range tensors.MustCopyFlatData[float64](out[0]) {
			if u < 0 || u >= 1 {
				t.Fatalf("%s: uniform %v outside [0, 1)", prec, u)
			}
			if float64(float32(u)) == u {
				onGrid++
			}
		}
		if prec == Float64 && onGrid > n/100 || prec == Float32 && onGrid != n {
			t.Errorf("%s: %d of %d draws are float32 values", prec, onGrid, n)
		}
	}
}

// Temperature divides the logits: temperedProbs is softmax(logits / T) with
// [MASK] at 0, checked against the host's softmax of the zero-masked logits.
func TestTemperatureDividesTheLogits(t *testing.T) {
	b, _ := backend.Shared()
	const B, L = 1, 4
	m, w := tinyModel(t, L)
	V, mask := m.Backbone.Vocab, m.Backbone.MaskIndex
	x := masks(B*L, mask)
	x[1] = 5
	args := []any{}
	for _, p := range w.Tensors() {
		args = append(args, p)
	}
	args = append(args, tensors.FromFlatDataAndDimensions(x, B, L), tensors.FromFlatDataAndDimensions([]float32{0}, B))
	n := len(m.Backbone.Specs())
	for _, temp := range []float64{0.5, 2} {
		exec, err := NewExec(b, func(in []*Node) []*Node {
			p := backbone.ParamsFromNodes(m.Backbone, in[:n])
			logits := diffusion.ZeroMaskedLogits(m.Backbone, p, w.RotaryInvFreqOrDefault(), in[n], in[n+1], layers.Inference, nil)
			return []*Node{logits, temperedProbs(m, p, w.RotaryInvFreqOrDefault(), in[n], in[n+1], temp)}
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Call(args...)
		if err != nil {
			t.Fatal(err)
		}
		logits, probs := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		for i := 0; i < B*L; i++ {
			lg, pr := logits[i*V:(i+1)*V], probs[i*V:(i+1)*V]
			z, mx := 0.0, math.Inf(-1)
			for v := range lg {
				if v != mask {
					mx = math.Max(mx, float64(lg[v]))
				}
			}
			for v := range lg {
				if v != mask {
					z += math.Exp((float64(lg[v]) - mx) / temp)
				}
			}
			for v := range lg {
				want := 0.0
				if v != mask {
					want = math.Exp((float64(lg[v])-mx)/temp) / z
				}
				if math.Abs(float64(pr[v])-want) > 1e-5 {
					t.Fatalf("T %g position %d token %d: %g, want %g", temp, i, v, pr[v], want)
				}
			}
		}
	}
}

// Low-confidence remasking unmasks the most confident positions: with rows
// where some positions are certain (probability 1 on one token) and the rest
// uniform over 7 tokens, no uncertain position unmasks while a certain one is
// still masked, and the uncertain ones go earliest first among equals; each
// step unmasks as many positions as the random rule does with the same seed.
func TestLowConfidenceUnmasksTheMostConfident(t *testing.T) {
	b, _ := backend.Shared()
	const L, V = 40, 8
	m, w := tinyModel(t, 8)
	m.Backbone.Vocab, m.Backbone.MaskIndex = V, V-1
	certain := map[int]bool{3: true, 7: true, 8: true, 15: true, 21: true, 22: true, 30: true, 33: true, 36: true, 39: true}
	probs := make([]float32, 0, L*V)
	for i := 0; i < L; i++ {
		row := make([]float32, V)
		for v := 0; v < V-1; v++ {
			row[v] = 1.0 / 7
		}
		if certain[i] {
			clear(row)
			row[i%(V-1)] = 1
		}
		probs = append(probs, row...)
	}
	pt := tensors.FromFlatDataAndDimensions(probs, 1, L, V)
	lc, _ := New(b, m, w, 9, nil)
	rnd, _ := New(b, m, w, 9, nil)
	x, y := masks(L, V-1), masks(L, V-1)
	var uncertain []int // in unmasking order
	for step := 0; step < 60 && unmaskedCount(masks(L, V-1), x, V-1) < L; step++ {
		next, err := lc.lowConfidenceUpdate(Options{}, x, pt, 0.3, 0.25, 1, L)
		if err != nil {
			t.Fatal(err)
		}
		ry, err := rnd.twoStageUpdate(Options{}, y, pt, 0.3, 0.25, 1, L)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := unmaskedCount(x, next, V-1), unmaskedCount(y, ry, V-1); got != want {
			t.Errorf("step %d: unmasked %d positions, the random rule %d", step, got, want)
		}
		certainLeft := 0
		for i := range next {
			if certain[i] && next[i] == int32(V-1) {
				certainLeft++
			}
		}
		for i := range next {
			if x[i] != int32(V-1) || next[i] == int32(V-1) {
				continue
			}
			switch {
			case certain[i] && next[i] != int32(i%(V-1)):
				t.Errorf("certain position %d took token %d", i, next[i])
			case !certain[i] && certainLeft > 0:
				t.Errorf("step %d: uncertain position %d unmasked while %d certain ones stay masked", step, i, certainLeft)
			case !certain[i]:
				uncertain = append(uncertain, i)
			}
		}
		x, y = next, ry
	}
	if !sort.IntsAreSorted(uncertain) || len(uncertain) != L-len(certain) {
		t.Errorf("uncertain positions unmasked in the order %v, want all %d, earliest first", uncertain, L-len(certain))
	}
}

func unmaskedCount(prev, next []int32, mask int) int {
	n := 0
	for i := range prev {
		if prev[i] == int32(mask) && next[i] != int32(mask) {
			n++
		}
	}
	return n
}

func TestMostConfident(t *testing.T) {
	cases := []struct {
		pos   []int32
		conf  []float64
		count []int
		want  []int
	}{
		{[]int32{0, 1, 2, 3}, []float64{0.1, 0.9, 0.5, 0.9}, []int{2}, []int{1, 3}},
		{[]int32{0, 1, 2, 3}, []float64{0.1, 0.9, 0.5, 0.9}, []int{9}, []int{1, 3, 2, 0}},
		{[]int32{1, 2, 5, 7}, []float64{0.2, 0.3, 0.9, 0.1}, []int{1, 1}, []int{1, 2}}, // L 4: rows 0 and 1
		{[]int32{5, 6}, []float64{0.2, 0.3}, []int{0, 1}, []int{1}},
	}
	for _, c := range cases {
		got := mostConfident(c.pos, c.conf, c.count, 4)
		sort.Ints(got)
		want := append([]int(nil), c.want...)
		sort.Ints(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("mostConfident(%v, %v, %v) = %v, want %v", c.pos, c.conf, c.count, got, want)
		}
	}
}

// nucleusFilter keeps exactly the tokens a sort finds (those whose more
// probable tokens hold less than P), ties included, in both precisions, on
// random rows with repeated values and zeros; the kept mass renormalises to 1.
func TestNucleusFilterMatchesSort(t *testing.T) {
	b, _ := backend.Shared()
	const rows, V = 200, 40
	rng := rand.New(rand.NewPCG(3, 4))
	p := make([]float32, 0, rows*V)
	for r := 0; r < rows; r++ {
		row := make([]float32, V)
		sum := float32(0)
		for v := range row {
			switch rng.IntN(4) {
			case 0: // zero
			case 1:
				row[v] = 0.5 // ties
			default:
				row[v] = float32(math.Exp(8 * rng.Float64()))
			}
			sum += row[v]
		}
		for v := range row {
			row[v] /= sum
		}
		p = append(p, row...)
	}
	for _, prec := range Precisions {
		for _, topP := range []float64{0.3, 0.9, 0.999} {
			exec, err := NewExec(b, func(x *Node) *Node { return nucleusFilter(ConvertDType(x, prec.dtype()), topP) })
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Call(tensors.FromFlatDataAndDimensions(p, rows, V))
			if err != nil {
				t.Fatal(err)
			}
			got := tensors.MustCopyFlatData[float64](float64Tensor(t, out[0]))
			for r := 0; r < rows; r++ {
				row, kept := p[r*V:(r+1)*V], got[r*V:(r+1)*V]
				sum := 0.0
				for v := range row {
					sum += kept[v]
					above := 0.0
					for _, q := range row {
						if q > row[v] {
							above += float64(q)
						}
					}
					if math.Abs(above-topP) < 1e-5 {
						continue // at the boundary the two sums may round apart
					}
					if want := above < topP && row[v] > 0; (kept[v] > 0) != want {
						t.Fatalf("%s P %g row %d token %d (p %g, mass above %g): kept %g", prec, topP, r, v, row[v], above, kept[v])
					}
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Fatalf("%s P %g row %d: kept mass %g", prec, topP, r, sum)
				}
			}
		}
	}
}

// float64Tensor returns a float64 copy of a float32 or float64 tensor.
func float64Tensor(t *testing.T, x *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	if x.DType() == dtypes.Float64 {
		return x
	}
	f := tensors.MustCopyFlatData[float32](x)
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return tensors.FromFlatDataAndDimensions(out, x.Shape().Dimensions...)
}
