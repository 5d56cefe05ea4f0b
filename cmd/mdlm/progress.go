package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line bar on stderr when it is a terminal, and nothing
// otherwise (CI logs stay clean; stages log their own milestones).
type progress struct {
	label string
	tty   bool
	start time.Time
}

func newProgress(label string) *progress {
	return &progress{label: label, tty: term.IsTerminal(int(os.Stderr.Fd())), start: time.Now()}
}

// Update draws the bar with extra text (e.g. loss and throughput).
func (p *progress) Update(done, total int, extra string) {
	if !p.tty || total <= 0 {
		return
	}
	const width = 30
	filled := width * done / total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = '.'
		if i < filled {
			bar[i] = '#'
		}
	}
	elapsed := time.Since(p.start)
	eta := time.Duration(0)
	if done > 0 {
		eta = time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	}
	fmt.Fprintf(os.Stderr, "\r%s [%s] %d/%d  %s  %s elapsed, ETA %s ", p.label, bar, done, total, extra,
		elapsed.Round(time.Second), eta.Round(time.Second))
}

// Done ends the display.
func (p *progress) Done() {
	if p.tty {
		fmt.Fprintln(os.Stderr)
	}
}

// Bytes shows a byte count (for transfers of unknown total).
func (p *progress) Bytes(n int64) {
	if !p.tty {
		return
	}
	fmt.Fprintf(os.Stderr, "\r%s %.1f MB  %s ", p.label, float64(n)/1e6, time.Since(p.start).Round(time.Second))
}
