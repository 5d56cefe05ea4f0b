// Command tokload times loading tokenizer.json files the way `mdlm tokenize
// --tokenizer file.json` does (tokenizer.LoadFile), for bench/tokenizer_load.sh.
//
//	go run ./bench/tokload -reps 5 name=path ...
//
// Prints "mdlm-load-<name> <seconds>" (the fastest of -reps loads) and the
// heap the loaded tokenizer keeps.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/mdlm-go/mdlm/tokenizer"
)

func main() {
	reps := flag.Int("reps", 5, "loads of each file; the fastest is reported")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the loads here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tokload: -cpuprofile: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "tokload: argument %q: want name=tokenizer.json\n", arg)
			os.Exit(2)
		}
		best, kept, err := timeLoad(path, max(*reps, 1))
		if err != nil {
			fmt.Fprintf(os.Stderr, "tokload: %v\n", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		fmt.Printf("%-36s %9.4f s %8.1f MB kept\n", "mdlm-load-"+name, best.Seconds(), float64(kept)/1e6)
	}
}

// timeLoad returns the fastest of reps loads of path and the heap that one
// loaded tokenizer keeps.
func timeLoad(path string, reps int) (best time.Duration, kept uint64, err error) {
	best = time.Duration(math.MaxInt64)
	var tok *tokenizer.HF
	for range reps {
		tok = nil
		runtime.GC() // the last load's garbage is not this one's cost
		before := heapInUse()
		start := time.Now()
		if tok, err = tokenizer.LoadFile(path); err != nil {
			return 0, 0, err
		}
		best = min(best, time.Since(start))
		if after := heapInUse(); after > before {
			kept = after - before
		}
	}
	runtime.KeepAlive(tok)
	return best, kept, nil
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
