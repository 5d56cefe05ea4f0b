// Command tokbench measures tokenizer throughput on one corpus, single-threaded
// unless asked otherwise: mdlm's GPT-2 and BERT tokenizers, each family's
// tokenizer.json given as name=path arguments, mdlm's batch encoder on 1 and 2
// workers for every family, on 4..N workers for GPT-2, and
// github.com/tiktoken-go/tokenizer (r50k_base = GPT-2), the fastest Go anchor.
//
// The families' measurements are interleaved: -scale-reps rounds, each timing
// every family's 1- and 2-worker passes (the fastest of each and the median of
// the rounds' ratios are reported, with a 95% distribution-free interval for
// that median), with the -reps single-thread passes of each family spread
// over the same rounds, and three controls on 1 and 2
// goroutines, what the machine gives a second thread at those moments: a
// register-only loop of dependent multiplies (latency-bound), one of eight
// independent chains (throughput-bound: it needs the core's execution units,
// which a hypervisor's other tenant on the same physical core takes), and
// dependent reads over one shared 8 MB table.
//
// It prints one line per measurement: name, MB/s, allocs/MB, the process's
// CPU seconds per MB (user + system, garbage collection included), the MB
// allocated per MB of text (what drives the collector), and the collector's
// CPU seconds per MB and collections in the pass. On a shared
// machine the CPU per MB of 1 and 2 workers shows what a second worker costs
// even when wall time is noise. It lives in its own module so the anchor never
// becomes an mdlm dependency.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	tiktoken "github.com/tiktoken-go/tokenizer"

	"github.com/mdlm-go/mdlm/bench/internal/chase"
	"github.com/mdlm-go/mdlm/tokenizer"
)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// result is what one pass took (the fastest, once measurements keep one).
type result struct {
	wall, user, sys time.Duration
	allocs, bytes   uint64        // heap allocations and bytes allocated in the pass
	gcCPU           time.Duration // the runtime's estimate of the CPU its collector took
	gcCycles        uint64        // collections in the pass
}

// gcCPU reads the runtime's estimate of the CPU its collector has taken.
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// measureBest runs fn reps times after a GC each and keeps the fastest pass.
func measureBest(reps int, fn func()) result {
	best := result{wall: 1 << 62}
	for r := 0; r < reps; r++ {
		best = faster(best, timePass(fn))
	}
	return best
}

// timePass runs fn once after a GC and returns what it took.
func timePass(fn func()) result {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := gcCPU()
	u0, s0 := cpuTime()
	start := time.Now()
	fn()
	el := time.Since(start)
	u1, s1 := cpuTime()
	g1 := gcCPU()
	runtime.ReadMemStats(&m1)
	return result{wall: el, user: u1 - u0, sys: s1 - s0, allocs: m1.Mallocs - m0.Mallocs,
		bytes: m1.TotalAlloc - m0.TotalAlloc, gcCPU: g1 - g0, gcCycles: uint64(m1.NumGC - m0.NumGC)}
}

// scalePair is one scaling measurement: the batch encoder on 1 and on 2
// workers.
type scalePair struct {
	name1, name2 string
	fn1, fn2     func()
}

// pairResult is a scalePair's fastest pass on each side and the 2/1 speed
// ratio of each round's two passes.
type pairResult struct {
	best1, best2 result
	ratios       []float64
}

// namedPass is a measurement of one function (a family's single-thread
// encoder) that measureInterleaved spreads over its rounds.
type namedPass struct {
	name string
	fn   func()
}

// measureInterleaved times every pair's two sides in turn, round after round
// (after an untimed one), the order of the two swapped every round, and the
// singles' reps passes spread evenly over the same rounds. Each pair's passes
// are spread over the whole measurement, not bunched in one window of it. On
// a shared machine a neighbour's burst lasts seconds to minutes and slows 2
// workers more than 1 (they need both cores undisturbed); measured pair after
// pair, every pass of the pairs inside a burst fell in it, and the three
// single-thread passes of a family measured one after another could all fall
// in one slow minute (bench/README, "Round 2026-12-06, third session").
func measureInterleaved(rounds, reps int, singles []namedPass, pairs []scalePair) ([]result, []pairResult) {
	one := make([]result, len(singles))
	for i := range one {
		one[i].wall = 1 << 62
	}
	res := make([]pairResult, len(pairs))
	for i := range res {
		res[i].best1.wall, res[i].best2.wall = 1<<62, 1<<62
	}
	for _, p := range pairs { // an untimed round: warm caches filled, heap grown
		p.fn1()
		p.fn2()
	}
	for r := 0; r < rounds; r++ {
		for i, s := range singles {
			for range (r+1)*reps/rounds - r*reps/rounds {
				one[i] = faster(one[i], timePass(s.fn))
			}
		}
		for i, p := range pairs {
			var a, b result
			if r%2 == 0 {
				a = timePass(p.fn1)
				b = timePass(p.fn2)
			} else {
				b = timePass(p.fn2)
				a = timePass(p.fn1)
			}
			res[i].best1 = faster(res[i].best1, a)
			res[i].best2 = faster(res[i].best2, b)
			res[i].ratios = append(res[i].ratios, a.wall.Seconds()/b.wall.Seconds())
		}
	}
	return one, res
}

// controlPass splits a control's total steps over workers goroutines, each
// running work(w, n) for its n steps; what work returns is kept so its loop
// is not optimized away.
func controlPass(workers, total int, work func(w, n int) uint64) func() {
	return func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				controlSink.Add(work(w, total/workers))
			}()
		}
		wg.Wait()
	}
}

var controlSink atomic.Uint64

// spinPass is the control pair's work: a register-only loop (no memory
// touched, nothing shared) split over workers goroutines. Its 2/1 scaling,
// measured in the same rounds as the encoders', is what the machine gives a
// second thread at those moments.
func spinPass(workers int) func() {
	const total = 1 << 26 // multiply-adds in all, each dependent on the last
	return controlPass(workers, total, func(w, n int) uint64 {
		x := uint64(w + 1)
		for range n {
			x = x*6364136223846793005 + 1442695040888963407
		}
		return x
	})
}

// ilpPass is the throughput-bound control: eight independent chains of adds,
// xors and shifts a step (no memory touched, nothing shared), which keep a
// core's integer units busy as the encoders' code does, where spinPass waits
// on one multiply at a time. A second thread on a core whose execution units
// are shared (another tenant on the sibling hardware thread) slows it, and
// not spinPass.
func ilpPass(workers int) func() {
	const total = 1 << 25 // steps in all
	return controlPass(workers, total, func(w, n int) uint64 {
		a, b, c, d := uint64(w+1), uint64(w+2), uint64(w+3), uint64(w+4)
		e, f, g, h := uint64(w+5), uint64(w+6), uint64(w+7), uint64(w+8)
		for range n {
			a += b ^ 3
			b += c ^ 5
			c += d ^ 7
			d += e ^ 11
			e += f ^ 13
			f += g ^ 17
			g += h ^ 19
			h += a ^ 23
			a ^= a >> 7
			c ^= c >> 9
			e ^= e >> 11
			g ^= g >> 13
		}
		return a + b + c + d + e + f + g + h
	})
}

// memTableBytes is the size of the memory control's table: 8 MB, about what a
// family's encoder reads at random (its pre-token cache's slots and records,
// the merge table and the vocabulary).
const memTableBytes = 8 << 20

// memPass is the second control pair's work: a pointer chase (bench/internal/chase)
// through one 8 MB table that both goroutines share (as the encoders share
// theirs), each load's address the word the last load returned, nothing
// written, split over workers goroutines that start at different points of
// its cycle. Beside spinPass, its 2/1 scaling in the same rounds shows what the
// machine's caches and memory give a second thread whose loads wait on shared
// tables at those moments, without the encoders' stores or any other code of
// ours.
func memPass(table []uint32, workers int) func() {
	const total = 1 << 21 // loads in all
	return controlPass(workers, total, func(w, n int) uint64 {
		return uint64(chase.Walk(table, chase.Start(table, w, workers), n))
	})
}

func faster(a, b result) result {
	if b.wall < a.wall {
		return b
	}
	return a
}

// median returns the median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// medianInterval returns a distribution-free confidence interval of at least
// 95% for the median of the population xs were drawn from (xs sorted): the
// k-th smallest and k-th largest, k the largest rank with P(Binomial(n, 1/2)
// < k) <= 2.5%. With fewer than 6 values no such k exists and it returns the
// extremes.
func medianInterval(xs []float64) (lo, hi float64) {
	n := len(xs)
	k, tail := 0, 0.0 // tail: P(Binomial(n, 1/2) < k+1)
	p := math.Pow(0.5, float64(n))
	for i := 0; i <= n; i++ { // p: P(Binomial(n, 1/2) = i)
		if tail+p > 0.025 {
			break
		}
		tail += p
		k = i + 1
		p = p * float64(n-i) / float64(i+1)
	}
	k = max(k, 1)
	return xs[k-1], xs[n-k]
}

// reportRounds measures the queued singles and pairs in interleaved rounds,
// with the two control pairs first, and prints each single's and side's fastest
// pass and each pair's scaling line.
func reportRounds(report func(string, result), rounds, reps int, singles []namedPass, pairs []scalePair) {
	if len(pairs) > 0 {
		table := chase.RandomCycle(memTableBytes, 1)
		pairs = append([]scalePair{
			{"control-spin-1workers", "control-spin-2workers", spinPass(1), spinPass(2)},
			{"control-ilp-1workers", "control-ilp-2workers", ilpPass(1), ilpPass(2)},
			{"control-mem-1workers", "control-mem-2workers", memPass(table, 1), memPass(table, 2)},
		}, pairs...)
	}
	one, res := measureInterleaved(rounds, reps, singles, pairs)
	for i, s := range singles {
		report(s.name, one[i])
	}
	for i, r := range res {
		p := pairs[i]
		if !strings.HasPrefix(p.name1, "control-") { // the controls have no MB/s
			report(p.name1, r.best1)
			report(p.name2, r.best2)
		}
		med := median(r.ratios) // sorts r.ratios
		lo, hi := medianInterval(r.ratios)
		fmt.Printf("%-28s best %.2fx median %.2fx lowest %.2fx rounds %d median-95%% %.2f-%.2fx\n", strings.TrimSuffix(p.name1, "-1workers")+"-scaling",
			r.best1.wall.Seconds()/r.best2.wall.Seconds(), med, r.ratios[0], len(r.ratios), lo, hi)
	}
}

// writeMemProfile writes the heap profile (allocations since the start).
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fail(fmt.Errorf("-memprofile: %w", err))
	}
	defer f.Close()
	runtime.GC() // the profile holds what the last collection saw: include the last pass
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		fail(fmt.Errorf("-memprofile %s: %w", path, err))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tokbench:", err)
	os.Exit(1)
}

func main() {
	corpus := flag.String("corpus", "", "text file")
	reps := flag.Int("reps", 3, "passes over the corpus (best one is reported); a family's single-thread passes are spread over the scaling rounds")
	scaleReps := flag.Int("scale-reps", 25, "rounds of the batch encoder on 1 and 2 workers, every family in each round (best of each and the median ratio are reported)")
	only := flag.String("only", "", "regexp: run only the measurements whose name matches")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the measurements here")
	memprofile := flag.String("memprofile", "", "write an allocation profile here at the end")
	memRate := flag.Int("memprofilerate", 0, "bytes between allocation samples (1: every allocation; 0: Go's default)")
	flag.Parse()
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	data, err := os.ReadFile(*corpus)
	if err != nil {
		fail(err)
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		fail(fmt.Errorf("-only %q: %w", *only, err))
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(fmt.Errorf("-cpuprofile: %w", err))
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(fmt.Errorf("-cpuprofile: %w", err))
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		defer writeMemProfile(*memprofile)
	}
	docs := strings.SplitAfter(string(data), "\n\n")
	mb := float64(len(data)) / 1e6

	report := func(name string, r result) {
		fmt.Printf("%-28s %8.2f MB/s %10.0f allocs/MB %8.4f cpu-s/MB (sys %.4f) %8.3f alloc-MB/MB gc %.4f cpu-s/MB %d cycles\n", name, mb/r.wall.Seconds(),
			float64(r.allocs)/mb, (r.user+r.sys).Seconds()/mb, r.sys.Seconds()/mb, float64(r.bytes)/1e6/mb, r.gcCPU.Seconds()/mb, r.gcCycles)
	}
	measure := func(name string, fn func()) {
		if filter.MatchString(name) {
			report(name, measureBest(*reps, fn))
		}
	}
	// measurePair queues a scaling pair, the batch encoder on 1 and on 2
	// workers, for measureInterleaved (when the filter takes both).
	var pairs []scalePair
	measurePair := func(name1, name2 string, fn1, fn2 func()) {
		if !filter.MatchString(name1) || !filter.MatchString(name2) {
			measure(name1, fn1) // one of them alone, or neither
			measure(name2, fn2)
			return
		}
		pairs = append(pairs, scalePair{name1, name2, fn1, fn2})
	}
	// measureSpread queues a family's single-thread measurement for the same
	// rounds.
	var singles []namedPass
	measureSpread := func(name string, fn func()) {
		if filter.MatchString(name) {
			singles = append(singles, namedPass{name, fn})
		}
	}
	fresh := func(t tokenizer.Tokenizer) tokenizer.Tokenizer {
		return t.(interface{ Clone() tokenizer.Tokenizer }).Clone() // cold cache every pass
	}
	single := func(t tokenizer.Tokenizer) func() {
		return func() {
			e := fresh(t)
			for _, d := range docs {
				e.Encode(d)
			}
		}
	}
	batch := func(t tokenizer.Tokenizer, workers int) func() {
		return func() { tokenizer.BatchEncode(fresh(t), docs, workers) }
	}
	// warmBatch encodes with a cache that already holds the corpus's pieces
	// (filled by the first call: measureInterleaved's untimed round, or a
	// first pass slower than the best that measureBest keeps): the steady
	// state of a corpus far larger than this one, where almost every piece has
	// been seen, as when tokenizing OpenWebText. The cold rows above pay the
	// first pass's misses every time.
	warmBatch := func(t tokenizer.Tokenizer, workers int) func() {
		var warm tokenizer.Tokenizer
		return func() {
			if warm == nil {
				warm = fresh(t)
				tokenizer.BatchEncode(warm, docs, workers)
			}
			tokenizer.BatchEncode(warm, docs, workers)
		}
	}
	batches := func(name string, t tokenizer.Tokenizer) {
		measurePair("mdlm-"+name+"-batch-1workers", "mdlm-"+name+"-batch-2workers", batch(t, 1), batch(t, 2))
		measurePair("mdlm-"+name+"-warm-batch-1workers", "mdlm-"+name+"-warm-batch-2workers", warmBatch(t, 1), warmBatch(t, 2))
	}

	gpt2, err := tokenizer.Load("gpt2")
	if err != nil {
		fail(err)
	}
	bert, err := tokenizer.Load("bert-base-uncased")
	if err != nil {
		fail(err)
	}
	measureSpread("mdlm-gpt2", single(gpt2))
	measureSpread("mdlm-bert", single(bert))
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "tokbench: argument %q: want name=tokenizer.json\n", arg)
			os.Exit(2)
		}
		if !slices.ContainsFunc([]string{"", "-batch-1workers", "-batch-2workers", "-warm-batch-1workers", "-warm-batch-2workers"},
			func(suffix string) bool { return filter.MatchString("mdlm-" + name + suffix) }) {
			continue // load only the families some measurement wants
		}
		tok, err := tokenizer.LoadFile(path)
		if err != nil {
			fail(err)
		}
		measureSpread("mdlm-"+name, single(tok))
		batches(name, tok)
	}
	batches("gpt2", gpt2)
	batches("bert", bert)
	for w := 4; w <= runtime.NumCPU(); w *= 2 {
		measure(fmt.Sprintf("mdlm-gpt2-batch-%dworkers", w), batch(gpt2, w))
	}
	reportRounds(report, max(*scaleReps, 1), max(*reps, 1), singles, pairs)
	if !filter.MatchString("tiktoken-go-r50k") {
		return
	}
	codec, err := tiktoken.Get(tiktoken.R50kBase)
	if err != nil {
		fail(err)
	}
	measure("tiktoken-go-r50k", func() {
		for _, d := range docs {
			codec.Encode(d)
		}
	})
}
