// Package progress reports the progress of long work on standard error:
// a redrawn bar with rate and ETA on a terminal, plain log lines (at most
// one every few seconds, plus the last) when the output is not a terminal.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar tracks one stage of countable work. It is safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	label    string
	unit     string
	total    int
	done     int
	start    time.Time
	lastDraw time.Time
	every    time.Duration
	finished bool
}

// New starts a bar for total units of work on standard error.
func New(label string, total int, unit string) *Bar {
	return NewWriter(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), label, total, unit)
}

// NewWriter starts a bar on w; tty selects the redrawn bar over log lines.
func NewWriter(w io.Writer, tty bool, label string, total int, unit string) *Bar {
	every := 5 * time.Second
	if tty {
		every = 100 * time.Millisecond
	}
	return &Bar{w: w, tty: tty, label: label, unit: unit, total: total, start: time.Now(), every: every}
}

// Add records n more units done and redraws when due.
func (b *Bar) Add(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	now := time.Now()
	if b.done < b.total && now.Sub(b.lastDraw) < b.every {
		return
	}
	b.lastDraw = now
	b.draw(now)
}

// Finish ends the bar's line on a terminal; calls after the first do
// nothing.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty && !b.finished {
		fmt.Fprintln(b.w)
	}
	b.finished = true
}

func (b *Bar) draw(now time.Time) {
	el := now.Sub(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(b.done) / el
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	}
	status := fmt.Sprintf("%s %d/%d %s, %.2f %s/s, elapsed %s, ETA %s", b.label, b.done, b.total, b.unit, rate, b.unit,
		time.Duration(el*float64(time.Second)).Round(time.Second), eta)
	if !b.tty {
		fmt.Fprintln(b.w, status)
		return
	}
	const width = 30
	fill := 0
	if b.total > 0 {
		fill = width * b.done / b.total
	}
	fmt.Fprintf(b.w, "\r[%s%s] %s\x1b[K", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), status)
}
