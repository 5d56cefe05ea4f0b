package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/mdlm-go/mdlm/backend"
)

// randomTensor is a float32 tensor of normal draws.
func randomTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// valueAndGrad evaluates f on x and the gradient of Σ f(x)·w for a random w.
func valueAndGrad(t *testing.T, f func(x *Node) *Node, x *tensors.Tensor) (value, grad []float32) {
	t.Helper()
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	out := MustExecOnceN(b, func(xn *Node) []*Node {
		y := f(xn)
		rng := rand.New(rand.NewPCG(3, 4))
		w := make([]float32, y.Shape().Size())
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		loss := ReduceAllSum(Mul(y, Const(xn.Graph(), tensors.FromFlatDataAndDimensions(w, y.Shape().Dimensions...))))
		return []*Node{y, Gradient(loss, xn)[0]}
	}, x)
	return tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
}

// matchesWithout checks that f has the same value and gradient at x with
// form on as with it off.
func matchesWithout(t *testing.T, form Form, f func(x *Node) *Node, x *tensors.Tensor) {
	t.Helper()
	gotV, gotG := valueAndGrad(t, f, x)
	SetForms(string(form))
	defer SetForms("")
	wantV, wantG := valueAndGrad(t, f, x)
	near(t, "value", gotV, wantV, 1e-6)
	near(t, "gradient", gotG, wantG, 1e-5)
}

func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol*math.Max(1, math.Abs(float64(want[i])))) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

// The training softmax (the fused kernel with its gradient written from its
// output) has GoMLX's Softmax's value and gradient, masked scores included.
func TestSoftmaxGradMatchesGoMLX(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := randomTensor(rng, 2, 3, 5, 7)
	flat := x.Value().([][][][]float32)
	flat[0][1][2][3] = maskedScore
	if b, _ := backend.Shared(); b.String() != "go" {
		t.Logf("backend %s: the form is not taken; checking the plain form against itself", b.String())
	}
	gotV, gotG := valueAndGrad(t, func(x *Node) *Node { return softmax(Training, x) }, x)
	wantV, wantG := valueAndGrad(t, func(x *Node) *Node { return Softmax(x, -1) }, x)
	near(t, "value", gotV, wantV, 1e-6)
	near(t, "gradient", gotG, wantG, 1e-5)
}

// LogSumExp's value is log Σ exp and its gradient the softmax.
func TestLogSumExp(t *testing.T) {
	x := tensors.FromFlatDataAndDimensions([]float32{0.5, -1, 2, 0, 3, 1, -2, 0.25}, 1, 2, 4)
	b, _ := backend.Shared()
	out := MustExecOnceN(b, func(xn *Node) []*Node {
		lse := LogSumExp(xn)
		return []*Node{lse, Gradient(ReduceAllSum(lse), xn)[0], Softmax(xn, -1)}
	}, x)
	got := tensors.MustCopyFlatData[float32](out[0])
	for r, row := range [][]float64{{0.5, -1, 2, 0}, {3, 1, -2, 0.25}} {
		s := 0.0
		for _, v := range row {
			s += math.Exp(v)
		}
		near(t, "lse", got[r:r+1], []float32{float32(math.Log(s))}, 1e-6)
	}
	near(t, "gradient", tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[2]), 1e-6)
}

// The switch: forms are off under UseGenericForms and for names SetForms
// turns off; unknown names are reported.
func TestFormSwitch(t *testing.T) {
	b, _ := backend.Shared()
	g := NewGraph(b, "forms")
	defer g.Finalize()
	if b.String() != "go" {
		t.Skipf("backend %s takes no forms", b.String())
	}
	for _, f := range Forms {
		if !uses(g, f) {
			t.Fatalf("form %s not taken on the Go backend", f)
		}
	}
	restore := UseGenericForms()
	if uses(g, ProductGrad) || uses(g, SpreadMid) || uses(g, SoftmaxGrad) || uses(g, ShortScan) {
		t.Fatal("a form taken under UseGenericForms")
	}
	if c := ScanCutFor(g, 1024); c.Chunk != 64 || !c.Checkpoint {
		t.Fatalf("generic scan cut %+v, want the accelerator's", c)
	}
	restore()
	if unknown := SetForms("spread-mid, nosuch"); len(unknown) != 1 || unknown[0] != "nosuch" {
		t.Fatalf("SetForms unknown = %v", unknown)
	}
	defer SetForms("")
	if uses(g, SpreadMid) || !uses(g, SoftmaxGrad) {
		t.Fatal("SetForms(spread-mid) did not turn off exactly spread-mid")
	}
}

// Attention with q, k and v laid out heads-leading (HeadsLeading) has the
// value and the gradients of the form without it, causal or not.
func TestAttentionHeadsLeadingMatches(t *testing.T) {
	if b, _ := backend.Shared(); b.String() != "go" {
		t.Skipf("backend %s: the form is not taken", b.String())
	}
	rng := rand.New(rand.NewPCG(7, 8))
	qkv := randomTensor(rng, 3, 2, 5, 3, 4) // (q, k, v) × [B, L, H, Dh]
	for _, causal := range []bool{false, true} {
		attend := func(x *Node) *Node {
			part := func(i int) *Node {
				return Squeeze(Slice(x, AxisElem(i), AxisRange(), AxisRange(), AxisRange(), AxisRange()), 0)
			}
			return Attention(Training, part(0), part(1), part(2), causal)
		}
		matchesWithout(t, HeadsLeading, attend, qkv)
	}
}

// Rotary.Apply rotates each head's halves by θ[p, j] = p·inv_freq_j, the
// same for every head (the tables are repeated over heads), in each mode with
// RotateProduct on and off, and its gradient is the inverse rotation of the
// cotangent (for a cotangent of ones: Σ of the rotation's rows).
func TestRotaryApply(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const B, L, H, dh = 2, 3, 2, 4
	invFreq := []float32{1, 0.25}
	rng := rand.New(rand.NewPCG(9, 10))
	u := randomTensor(rng, B, L, H, dh)
	in := tensors.MustCopyFlatData[float32](u)
	for _, tc := range []struct {
		name string
		mode Mode
		off  string
	}{
		{"training", Training, ""}, {"inference", Inference, ""},
		{"training-slices", Training, string(RotateProduct)}, {"inference-slices", Inference, string(RotateProduct)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			SetForms(tc.off)
			defer SetForms("")
			outs := MustExecOnceN(b, func(x *Node) []*Node {
				y := NewRotary(x.Graph(), invFreq, L, x.DType()).Apply(tc.mode, x)
				if tc.mode == Inference {
					return []*Node{y, y}
				}
				return []*Node{y, Gradient(ReduceAllSum(y), x)[0]}
			}, u)
			got := tensors.MustCopyFlatData[float32](outs[0])
			grad := tensors.MustCopyFlatData[float32](outs[1])
			for i := range B * L * H {
				p := float64((i / H) % L)
				for j := range dh / 2 {
					c, s := math.Cos(p*float64(invFreq[j])), math.Sin(p*float64(invFreq[j]))
					u1, u2 := float64(in[i*dh+j]), float64(in[i*dh+j+dh/2])
					near(t, "first half", got[i*dh+j:i*dh+j+1], []float32{float32(u1*c - u2*s)}, 1e-5)
					near(t, "second half", got[i*dh+j+dh/2:i*dh+j+dh/2+1], []float32{float32(u2*c + u1*s)}, 1e-5)
					if tc.mode == Training {
						near(t, "first half's gradient", grad[i*dh+j:i*dh+j+1], []float32{float32(c + s)}, 1e-5)
						near(t, "second half's gradient", grad[i*dh+j+dh/2:i*dh+j+dh/2+1], []float32{float32(c - s)}, 1e-5)
					}
				}
			}
		})
	}
}

// QKV splits attn_qkv's product into q, k and v per head, the same in
// training (Linear, then slices) and inference (GoMLX's QKVProjection).
func TestQKV(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const B, L, D, H = 2, 3, 4, 2
	rng := rand.New(rand.NewPCG(11, 12))
	x, w := randomTensor(rng, B, L, D), randomTensor(rng, 3*D, D)
	xs, ws := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](w)
	for _, mode := range []Mode{Training, Inference} {
		outs := MustExecOnceN(b, func(x, w *Node) []*Node {
			q, k, v := QKV(mode, x, w, H)
			return []*Node{q, k, v}
		}, x, w)
		for part, out := range outs {
			if got := out.Shape().Dimensions; !slices.Equal(got, []int{B, L, H, D / H}) {
				t.Fatalf("mode %d part %d: shape %v", mode, part, got)
			}
			got := tensors.MustCopyFlatData[float32](out)
			for r := range B * L {
				for o := range D {
					var want float64
					for i := range D {
						want += float64(xs[r*D+i]) * float64(ws[(part*D+o)*D+i])
					}
					near(t, "q, k, v", got[r*D+o:r*D+o+1], []float32{float32(want)}, 1e-5)
				}
			}
		}
	}
}

// QKV in training with SplitQKV (the fused projection, the gradient a
// concatenation) has the value and the gradients, for x and W, of Linear and
// slices differentiated by GoMLX, also when v gets no gradient.
func TestQKVSplitMatches(t *testing.T) {
	if b, _ := backend.Shared(); b.String() != "go" {
		t.Skipf("backend %s: the form is not taken", b.String())
	}
	const B, L, D, H = 2, 3, 4, 2
	rng := rand.New(rand.NewPCG(13, 14))
	in := randomTensor(rng, B*L*D+3*D*D) // x and W in one tensor, for one gradient
	for _, useV := range []bool{true, false} {
		project := func(in *Node) *Node {
			x := Reshape(Slice(in, AxisRange(0, B*L*D)), B, L, D)
			w := Reshape(Slice(in, AxisRange(B*L*D, B*L*D+3*D*D)), 3*D, D)
			q, k, v := QKV(Training, x, w, H)
			if !useV {
				v = ZerosLike(v)
			}
			return Concatenate([]*Node{q, k, v}, -1)
		}
		matchesWithout(t, SplitQKV, project, in)
	}
}

// swapByProduct is the transpose of the last two axes, value for value.
func TestSwapByProduct(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, dims := range [][]int{{4, 6, 3}, {2, 3, 5, 7}, {1, 1, 1}} {
		x := randomTensor(rng, dims...)
		r := len(dims)
		perm := seq(0, r)
		perm[r-2], perm[r-1] = r-1, r-2
		out := MustExecOnceN(b, func(xn *Node) []*Node {
			return []*Node{swapByProduct(xn), TransposeAllAxes(xn, perm...)}
		}, x)
		got, want := tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
		if !slices.Equal(out[0].Shape().Dimensions, out[1].Shape().Dimensions) || !slices.Equal(got, want) {
			t.Errorf("%v: swapByProduct %v %v, want %v %v", dims, out[0].Shape(), got, out[1].Shape(), want)
		}
	}
	for _, c := range []struct {
		perm []int
		want bool
	}{{[]int{0, 2, 1}, true}, {[]int{1, 0}, true}, {[]int{0, 1, 3, 2}, true}, {[]int{1, 0, 2}, false}, {[]int{0, 2, 3, 1}, false}} {
		if got := isSwapLast(c.perm); got != c.want {
			t.Errorf("isSwapLast(%v) = %v", c.perm, got)
		}
	}
}

// Attention's gradient with IdentitySwap (its backward pass's batched
// transposes as products) equals it without, and the form adds products.
func TestAttentionIdentitySwapMatches(t *testing.T) {
	b, _ := backend.Shared()
	if b.String() != "go" {
		t.Skipf("backend %s: the form is not taken", b.String())
	}
	rng := rand.New(rand.NewPCG(17, 18))
	// (q, k, v) × [B, L, H, Dh]: the backward pass's swaps reach
	// minSwapByProduct elements with last axes of at most maxSwapByProduct.
	qkv := randomTensor(rng, 3, 16, 64, 4, 64)
	attend := func(x *Node) *Node {
		part := func(i int) *Node {
			return Squeeze(Slice(x, AxisElem(i), AxisRange(), AxisRange(), AxisRange(), AxisRange()), 0)
		}
		return Attention(Training, part(0), part(1), part(2), false)
	}
	matchesWithout(t, IdentitySwap, attend, qkv)
	products := func() int {
		n := 0
		MustExecOnceN(b, func(x *Node) []*Node {
			gr := Gradient(ReduceAllSum(attend(x)), x)[0]
			for _, nd := range x.Graph().Nodes() {
				if nd.Type() == NodeTypeDotGeneral {
					n++
				}
			}
			return []*Node{gr}
		}, qkv)
		return n
	}
	on := products()
	SetForms(string(IdentitySwap))
	off := products()
	SetForms("")
	if on <= off {
		t.Errorf("%d products with IdentitySwap, %d without: the form built none", on, off)
	}
}

// Two gradients taken in one graph through a training product and the
// training q/k/v split are each the gradient of their own loss: the forms
// record a cotangent per Gradient call.
func TestTwoGradientsInOneGraph(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const B, L, D = 2, 3, 4
	rng := rand.New(rand.NewPCG(19, 20))
	in := randomTensor(rng, B*L*D+3*D*D)
	grads := func() [2][]float32 {
		out := MustExecOnceN(b, func(a *Node) []*Node {
			x := Reshape(Slice(a, AxisRange(0, B*L*D)), B, L, D)
			w := Reshape(Slice(a, AxisRange(B*L*D, B*L*D+3*D*D)), 3*D, D)
			q, k, v := QKV(Training, x, w, 2)
			first := ReduceAllSum(Mul(q, k))
			second := ReduceAllSum(Mul(v, v))
			return []*Node{Gradient(first, a)[0], Gradient(second, a)[0]}
		}, in)
		return [2][]float32{tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])}
	}
	got := grads()
	restore := UseGenericForms()
	want := grads()
	restore()
	for i := range got {
		near(t, fmt.Sprintf("gradient %d", i), got[i], want[i], 1e-5)
	}
}
