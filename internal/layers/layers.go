// Package layers holds the whole operations the backbones and the diffusion
// losses are built from (Embed, Linear, LayerNorm, AdaLNModulate, GeluTanh,
// Rotary, Attention, LogSumExp, Modulate, Gated, the selective scan's cut into
// chunks), each written as the reference writes it
// (models/dit.py, diffusion.py), so backbone/ and diffusion/ read like the
// reference and carry no backend checks, and the training step's optimizer
// (ClipAdamW: clip_grad_norm_ then torch.optim.AdamW, a training-only form).
//
// Every operation has one plain form: GoMLX's own ops (nn.Dense,
// activation.GeluApproximate, Softmax, nn.LayerNorm), which pick the
// backend's fused kernels themselves where it has them. An operation takes
// another form only where that form paid at least 3% of a measured step
// (bench/README.md, "Graph forms"), and only under this rule:
//
//   - the form is named in Forms and enabled (all are, unless a benchmark
//     turned one off with SetForms);
//   - the graph is on the pure-Go backend ("go"), the one the forms were
//     measured on, and MDLM_GENERIC_GRAPHS=1 (UseGenericForms) is not set;
//   - the operation's Mode allows it: Training forms are for graphs that take
//     a gradient, Inference forms for those that never do (eval, sampling).
//
// HostAdamW is the one form that is not a graph: on the Go backend, whose
// buffers are host memory, the training step's graph returns the gradients
// and Go code clips them and applies AdamW in place, a vectorized pass per
// parameter for the norm and one for the update, on every core (train.Step),
// where the graph's optimizer was a dozen single-threaded passes per
// parameter and held their temporaries.
// OnBackend is its rule (the graph rule less the mode).
//
// Everywhere else (XLA, MDLM_GENERIC_GRAPHS=1) the plain form is built, so a
// generic graph is exactly what an accelerator runs. GOMLX_FUSION=0 further
// turns off GoMLX's own fused kernels inside the plain forms.
//
// Nothing here changes GoMLX's process-wide state: a hand-written gradient is
// attached to its own node (IdentityWithCustomGradient, or the fused op's
// decomposed alternative, InternalFusedOpCaller), never through
// VJPRegistration.
package layers

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
)

// Mode says whether a graph is built for training (a gradient will be taken)
// or for inference (eval, sampling: never differentiated).
type Mode int

const (
	Inference Mode = iota
	Training
)

// Form names one backend-specific form (see the package doc for when each is used).
type Form string

// Forms are the kept forms, each with the measured reason in bench/README.md.
var Forms = []Form{ProductGrad, SpreadMid, SoftmaxGrad, ShortScan, HeadsLeading, FoldedAdamW, RotateProduct, SplitQKV, HostAdamW, IdentitySwap}

const (
	// ProductGrad builds a training product's gradient in the layouts the Go
	// backend's matmul takes (contract), a token axis that is a multiple of
	// 1024 padded before its 2D transpose (tokenPad).
	ProductGrad Form = "product-grad"
	// SpreadMid lays adaLN's per-sequence shift, scale and gate over
	// positions as a product with ones (overPositions).
	SpreadMid Form = "spread-mid"
	// SoftmaxGrad is attention's softmax in training: the fused kernel with its
	// gradient written from its output (softmax).
	SoftmaxGrad Form = "softmax-grad"
	// HeadsLeading lays attention's q, k and v out [B, H, L, Dh] once, in
	// training, so its products need no transposes of their own (Attention).
	HeadsLeading Form = "heads-leading"
	// ShortScan solves the selective scan one position at a time (ScanCut).
	ShortScan Form = "short-scan"
	// FoldedAdamW folds the gradient clip's coefficient into AdamW's moment
	// updates, one pass fewer over every gradient (ClipAdamW).
	FoldedAdamW Form = "folded-adamw"
	// RotateProduct is RoPE's rotate_half as a product with a permutation
	// (Rotary.Apply).
	RotateProduct Form = "rotate-product"
	// SplitQKV is attention's q/k/v split in training: the fused projection,
	// the gradient a concatenation (QKV).
	SplitQKV Form = "split-qkv"
	// HostAdamW is the training step's clip and AdamW on the host: the step's
	// graph returns the gradients, and one pass of Go code per parameter
	// updates it and its moments in place (train.Step; optim.UpdateInPlace).
	// Not a graph form: OnBackend is its rule.
	HostAdamW Form = "host-adamw"
	// IdentitySwap swaps the last two axes of a training product's operand
	// or result as a batched product with the identity (transpose).
	IdentitySwap Form = "identity-swap"
)

var (
	generic  atomic.Bool
	offMu    sync.RWMutex
	disabled = map[Form]bool{}
)

// UseGenericForms makes graphs built from now on take the plain forms on every
// backend (what XLA runs), until the returned function restores the previous
// setting: MDLM_GENERIC_GRAPHS=1, tests and benchmarks that compare the two.
func UseGenericForms() (restore func()) {
	prev := generic.Swap(true)
	return func() { generic.Store(prev) }
}

// SetForms turns off the forms named in a comma-separated list (for
// benchmarks measuring one form at a time, bench/cpustep -forms); "" turns
// every form back on. Unknown names are reported.
func SetForms(off string) (unknown []string) {
	offMu.Lock()
	defer offMu.Unlock()
	disabled = map[Form]bool{}
	for _, f := range strings.Split(off, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(Forms, Form(f)) {
			unknown = append(unknown, f)
			continue
		}
		disabled[Form(f)] = true
	}
	return unknown
}

// uses reports whether graph g takes form f (the package doc's rule, less the mode).
func uses(g *Graph, f Form) bool { return OnBackend(g.Backend(), f) }

// OnBackend reports whether work on backend b takes form f (the package doc's
// rule, less the mode): for a form that is not a graph (HostAdamW), or before
// a graph is built.
func OnBackend(b compute.Backend, f Form) bool {
	if generic.Load() || b.String() != "go" {
		return false
	}
	offMu.RLock()
	defer offMu.RUnlock()
	return !disabled[f]
}
