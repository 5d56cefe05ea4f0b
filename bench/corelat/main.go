// Command corelat measures what two cores of this machine pay to share
// memory, the figures that bound how well work that shares a cache (the
// tokenizer's BatchEncode workers) can scale on it:
//
//   - the time one cache line takes to travel from one core to the other: two
//     threads, each locked to its own OS thread, pass a counter back and forth;
//     half a round trip is one transfer;
//   - the latency of dependent loads over buffers of growing size, on one
//     thread and on two threads at once, each over its own buffer and both
//     over one shared buffer (as BatchEncode's workers read the tokenizer's
//     tables), which shows where each core's caches end, whether the two
//     share the last level, and what reading the same lines costs.
//
// It prints one line per figure. Run it on an otherwise idle machine: a busy
// neighbour slows both.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlm-go/mdlm/bench/internal/chase"
)

func main() {
	rounds := flag.Int("rounds", 2_000_000, "round trips of the cache line")
	loads := flag.Int("loads", 5_000_000, "dependent loads per buffer size and run")
	flag.Parse()
	runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))

	best := time.Duration(1 << 62)
	for range 3 {
		best = min(best, pingPong(*rounds))
	}
	fmt.Printf("cache line between two cores: %.0f ns one way (%.0f ns round trip)\n",
		float64(best.Nanoseconds())/float64(*rounds)/2, float64(best.Nanoseconds())/float64(*rounds))

	for _, kb := range []int{32, 256, 768, 2 << 10, 8 << 10, 32 << 10} {
		one := chaseLatency(kb<<10, *loads, 1, false)
		two := chaseLatency(kb<<10, *loads, 2, false)
		shared := chaseLatency(kb<<10, *loads, 2, true)
		fmt.Printf("dependent loads over %6d KB: %6.1f ns on one thread, %6.1f ns on two (each its own buffer), %6.1f ns on two sharing one\n",
			kb, one, two, shared)
	}
}

// pingPong passes a counter between two OS threads rounds times and returns
// the time taken.
func pingPong(rounds int) time.Duration {
	var line atomic.Int64
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := int64(0); i < int64(rounds); i++ {
			for line.Load() != 2*i+1 {
			}
			line.Store(2*i + 2)
		}
		close(done)
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := int64(0); i < int64(rounds); i++ {
		for line.Load() != 2*i {
		}
		line.Store(2*i + 1)
	}
	<-done
	return time.Since(start)
}

// chaseLatency returns the nanoseconds per load of a pointer chase over a
// buffer of size bytes visiting its cache lines in a random cycle, on threads
// goroutines at once, each over its own buffer or, shared, all over one from
// different points of its cycle (the best of 3 runs).
func chaseLatency(size, loads, threads int, shared bool) float64 {
	bufs := make([][]uint32, threads)
	for i := range bufs {
		if shared && i > 0 {
			bufs[i] = bufs[0]
			continue
		}
		bufs[i] = chase.RandomCycle(size, uint64(i+1))
	}
	best := time.Duration(1 << 62)
	for range 3 {
		var wg sync.WaitGroup
		start := time.Now()
		for k, b := range bufs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sink.Add(int64(chase.Walk(b, chase.Start(b, k, threads), loads)))
			}()
		}
		wg.Wait()
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds()) / float64(loads)
}

var sink atomic.Int64
