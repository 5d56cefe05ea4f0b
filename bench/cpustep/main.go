// Command cpustep times mdlm's training step (forward, SUBS loss, backward,
// global-norm clip, AdamW; float32, dropout 0) or its forward pass (loss
// without gradients, what eval and sampling run) for one configuration, and
// writes the initial weights and the batches it used, so that
// bench/torch_step.py runs the identical computation in PyTorch
// (bench/cpu_vs_torch.sh compares the two).
//
//	cpustep -case d128 -dir DIR -steps 10 [-forward] [-init] [-generic] [-forms-off FORMS] [-cpuprofile F] [-memprofile F]
//
// With -init it writes DIR/weights.safetensors (the reference state dict) and
// DIR/batches.safetensors (x0, xt [S, B, L] int64; sigma, dsigma [S, B]) and
// exits. Otherwise it reads them, runs the steps, and prints one JSON line:
// per-step loss, wall and CPU milliseconds, and the peak resident memory.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/mdlm-go/mdlm/backbone"
	"github.com/mdlm-go/mdlm/backend"
	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/evaluate"
	"github.com/mdlm-go/mdlm/internal/layers"
	"github.com/mdlm-go/mdlm/optim"
	"github.com/mdlm-go/mdlm/safetensors"
	"github.com/mdlm-go/mdlm/train"
)

// benchCase is one configuration of the comparison.
type benchCase struct {
	cfg  backbone.Config
	B, L int
}

// cases are the issue's: D128 N2 L128 B16 V1000; the demo pipeline's model
// (bytes vocabulary, L 64, batch 32; demo-bpe with its learned vocabulary); the reference's tiny config at 2 x 128
// with the GPT-2 vocabulary.
var cases = map[string]benchCase{
	"d128": {backbone.Config{Arch: backbone.DiT, Vocab: 1000, Hidden: 128, Heads: 4, Blocks: 2, Cond: 64, MaskIndex: 999}, 16, 128},
	"demo": {backbone.Config{Arch: backbone.DiT, Vocab: 259, Hidden: 128, Heads: 4, Blocks: 2, Cond: 64, MaskIndex: 258}, 32, 64},
	// The demo pipeline's model since it learns its own BPE (pipelines/demo.yaml,
	// vocabulary 4,096): the same sizes with the larger output layer.
	"demo-bpe": {backbone.Config{Arch: backbone.DiT, Vocab: 4096, Hidden: 128, Heads: 4, Blocks: 2, Cond: 64, MaskIndex: 4095}, 32, 64},
	"tiny":     {backbone.Config{Arch: backbone.DiT, Vocab: 50258, Hidden: 512, Heads: 8, Blocks: 8, Cond: 128, MaskIndex: 50257}, 2, 128},
	// DiMamba (issue 11): the demo's sizes, and the reference's tiny-dimamba
	// (D 512, 14 blocks, C 128) at the same 2 x 128 as tiny.
	"demo-dimamba": {backbone.Config{Arch: backbone.DiMamba, Vocab: 259, Hidden: 128, Blocks: 2, Cond: 64, MaskIndex: 258}.WithMambaDefaults(), 32, 64},
	"tiny-dimamba": {backbone.Config{Arch: backbone.DiMamba, Vocab: 50258, Hidden: 512, Blocks: 14, Cond: 128, MaskIndex: 50257}.WithMambaDefaults(), 2, 128},
}

func main() {
	name := flag.String("case", "d128", "configuration: d128, demo, demo-bpe, tiny, demo-dimamba or tiny-dimamba")
	dir := flag.String("dir", "", "directory of weights.safetensors and batches.safetensors")
	steps := flag.Int("steps", 10, "steps (or forward passes) to time; the first compiles and is reported apart")
	forward := flag.Bool("forward", false, "time the forward pass and loss only")
	init := flag.Bool("init", false, "write the weights and batches, then exit")
	lr := flag.Float64("lr", 1e-3, "AdamW learning rate (constant)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed steps here")
	memprofile := flag.String("memprofile", "", "write a heap profile (allocations of the whole run) here at the end")
	scanChunk := flag.Int("scan-chunk", 0, "DiMamba: positions per scan chunk (0: the backend's default)")
	scanCheckpoint := flag.Bool("scan-checkpoint", false, "DiMamba, with -scan-chunk: recompute scan chunks in the backward pass")
	generic := flag.Bool("generic", false, "build the plain graphs XLA runs (layers.UseGenericForms), for comparison")
	formsOff := flag.String("forms-off", "", "comma-separated layers.Forms to turn off, to measure one form at a time")
	flag.Parse()
	if *generic {
		layers.UseGenericForms()
	}
	if unknown := layers.SetForms(*formsOff); len(unknown) > 0 {
		fmt.Fprintf(os.Stderr, "cpustep: unknown forms %v (known: %v)\n", unknown, layers.Forms)
		os.Exit(2)
	}
	if *scanChunk > 0 {
		layers.ScanOverride = &layers.ScanCut{Chunk: *scanChunk, Checkpoint: *scanCheckpoint}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpustep:", err)
			os.Exit(1)
		}
		// The profile starts after the first step (loading, compilation and
		// the host copies left out) and stops before the output is written.
		afterFirstStep = func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(os.Stderr, "cpustep:", err)
				os.Exit(1)
			}
		}
		defer pprof.StopCPUProfile()
	}
	c, ok := cases[*name]
	if !ok || *dir == "" {
		fmt.Fprintf(os.Stderr, "cpustep: -case one of d128, demo, demo-bpe, tiny, demo-dimamba, tiny-dimamba and -dir are required\n")
		os.Exit(2)
	}
	c.cfg.Length = c.L
	if err := run(c, *dir, *steps, *forward, *init, *lr); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "cpustep:", err)
		os.Exit(1)
	}
	if *memprofile != "" {
		if err := writeHeapProfile(*memprofile); err != nil {
			fmt.Fprintln(os.Stderr, "cpustep:", err)
			os.Exit(1)
		}
	}
}

// writeHeapProfile writes the heap profile (its alloc_space view has every
// allocation of the run, sampled; its inuse_space view what is live after a
// collection forced here, at the end of the timed steps) to path.
func writeHeapProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memprofile %s: %w", path, err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("memprofile %s: %w", path, err)
	}
	return f.Close()
}

func run(c benchCase, dir string, steps int, forward, init bool, lr float64) error {
	m := diffusion.Model{Backbone: c.cfg, Param: diffusion.SUBS, Schedule: diffusion.LogLinear{Eps: diffusion.LogLinearEps},
		SamplingEps: 1e-3, Antithetic: true}
	if init {
		return writeInputs(m, c, dir, steps)
	}
	w, err := readWeights(c.cfg, filepath.Join(dir, "weights.safetensors"))
	if err != nil {
		return err
	}
	batches, err := readBatches(filepath.Join(dir, "batches.safetensors"), c)
	if err != nil {
		return err
	}
	b, err := backend.Shared()
	if err != nil {
		return err
	}
	out := struct {
		Losses    []float64 `json:"losses"`
		Ms        []float64 `json:"ms"`
		CPUMs     []float64 `json:"cpu_ms"`
		CompileMs float64   `json:"first_ms"`
		PeakRSSMB float64   `json:"peak_rss_mb"`
		// StepPeakRSSMB is the peak over the timed steps only (the first step,
		// which compiles and converts the host weights, left out; 0 where the
		// kernel's peak cannot be reset).
		StepPeakRSSMB float64 `json:"step_peak_rss_mb"`
	}{}
	firstPeak := 0.0
	if forward {
		ev := evaluate.NewEvaluator(b, m, w.RotaryInvFreqOrDefault())
		params := w.Tensors()
		for i := 0; i <= steps; i++ {
			bt := batches[i%len(batches)]
			start, cpu := time.Now(), cpuTime()
			s, n, err := ev.Sums(params, bt)
			if err != nil {
				return err
			}
			record(&out.Losses, &out.Ms, &out.CPUMs, &out.CompileMs, i, s/n, time.Since(start), cpuTime()-cpu)
			if i == 0 {
				firstPeak = resetPeakRSS()
				afterFirstStep()
			}
		}
	} else {
		st, err := train.NewStep(b, m, optim.AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, optim.ConstantWarmup{Peak: lr}, 1, w.RotaryInvFreqOrDefault())
		if err != nil {
			return err
		}
		state, err := stateFor(b, w)
		if err != nil {
			return err
		}
		for i := 0; i <= steps && i < len(batches); i++ {
			start, cpu := time.Now(), cpuTime()
			res, err := st.Run(state, batches[i])
			if err != nil {
				return err
			}
			record(&out.Losses, &out.Ms, &out.CPUMs, &out.CompileMs, i, float64(res.Loss), time.Since(start), cpuTime()-cpu)
			if i == 0 {
				firstPeak = resetPeakRSS()
				afterFirstStep()
			}
		}
	}
	pprof.StopCPUProfile()
	out.PeakRSSMB = max(peakRSSMB(), firstPeak)
	if firstPeak > 0 {
		out.StepPeakRSSMB = peakRSSMB()
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// stateFor is the training state as `mdlm train` makes it for backend b
// (train.NewStateOn), or NewState's host tensors with -host-state (for
// measuring the difference).
func stateFor(b compute.Backend, w *backbone.Weights) (*train.State, error) {
	if *hostState {
		return train.NewState(w, 1, dtypes.Float32)
	}
	return train.NewStateOn(b, w, 1, dtypes.Float32)
}

var hostState = flag.Bool("host-state", false, "make the training state as host tensors (train.NewState) rather than in the backend's shared buffers")

// afterFirstStep runs once the first step (compilation included) is done.
var afterFirstStep = func() {}

// record keeps every loss; the first call's time (compilation included) is
// reported apart from the timed ones, whose wall and CPU times (all threads,
// user and system: the work done, which other processes on the machine
// disturb far less than the wall time) are kept.
func record(losses, ms, cpuMs *[]float64, first *float64, i int, loss float64, d, cpu time.Duration) {
	*losses = append(*losses, loss)
	if i == 0 {
		*first = float64(d.Microseconds()) / 1000
		return
	}
	*ms = append(*ms, float64(d.Microseconds())/1000)
	*cpuMs = append(*cpuMs, float64(cpu.Microseconds())/1000)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeInputs draws the initial weights (the reference's initialisation, with
// the zero-initialised adaLN and output layers set to small random values so
// every parameter gets a gradient) and steps+1 noised batches.
func writeInputs(m diffusion.Model, c benchCase, dir string, steps int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	w, err := backbone.NewWeights(c.cfg, 7)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for name, v := range w.Data {
		if strings.Contains(name, "adaLN") || strings.HasPrefix(name, "output_layer.linear") || name == "model.lm_head.weight" {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.02)
			}
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "weights.safetensors"), w.SafetensorsTensors(""), nil); err != nil {
		return err
	}
	S, B, L := steps+1, c.B, c.L
	x0, xt := make([]int64, 0, S*B*L), make([]int64, 0, S*B*L)
	var sigma, dsigma []float32
	for s := 0; s < S; s++ {
		ids := make([]int32, B*L)
		for i := range ids {
			ids[i] = int32(rng.IntN(c.cfg.Vocab - 1))
		}
		noised, _, sg, ds := diffusion.NoiseBatch(m, ids, B, L, rng)
		for i := range ids {
			x0, xt = append(x0, int64(ids[i])), append(xt, int64(noised[i]))
		}
		sigma, dsigma = append(sigma, sg...), append(dsigma, ds...)
	}
	return safetensors.WriteFile(filepath.Join(dir, "batches.safetensors"), []safetensors.Tensor{
		safetensors.FromInt64("x0", []int{S, B, L}, x0), safetensors.FromInt64("xt", []int{S, B, L}, xt),
		safetensors.FromFloat32("sigma", []int{S, B}, sigma), safetensors.FromFloat32("dsigma", []int{S, B}, dsigma)}, nil)
}

func readWeights(cfg backbone.Config, path string) (*backbone.Weights, error) {
	f, err := safetensors.OpenMmap(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backbone.LoadWeights(f, cfg)
}

func readBatches(path string, c benchCase) ([]diffusion.Batch, error) {
	f, err := safetensors.OpenMmap(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x0, shape, err := f.Int64("x0")
	if err != nil {
		return nil, err
	}
	xt, _, err := f.Int64("xt")
	if err != nil {
		return nil, err
	}
	sigma, _, err := f.Float32("sigma")
	if err != nil {
		return nil, err
	}
	dsigma, _, err := f.Float32("dsigma")
	if err != nil {
		return nil, err
	}
	S, B, L := shape[0], shape[1], shape[2]
	out := make([]diffusion.Batch, S)
	for s := range out {
		bt := diffusion.Batch{B: B, L: L, Sigma: sigma[s*B : (s+1)*B], DSigma: dsigma[s*B : (s+1)*B], T: make([]float32, B),
			X0: make([]int32, B*L), XT: make([]int32, B*L), TokenMask: make([]float32, B*L)}
		for i := 0; i < B*L; i++ {
			bt.X0[i], bt.XT[i], bt.TokenMask[i] = int32(x0[s*B*L+i]), int32(xt[s*B*L+i]), 1
		}
		out[s] = bt
	}
	return out, nil
}

// resetPeakRSS returns the peak so far and resets the kernel's peak (VmHWM) to
// the current resident size (proc(5): writing 5 to /proc/self/clear_refs); 0
// where it cannot.
func resetPeakRSS() float64 {
	peak := peakRSSMB()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fmt.Fprintln(os.Stderr, "cpustep: cannot reset the peak RSS:", err)
		return 0
	}
	return peak
}

// peakRSSMB is VmHWM from /proc/self/status (0 where unavailable).
func peakRSSMB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
