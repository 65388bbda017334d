// Package progress tells a person at a terminal what a command is waiting
// for when a wait lasts over a second (discovery, login, the agent, the
// handshake): a line with a spinner and the seconds spent, erased when the
// wait ends. On anything but a terminal it prints nothing, so scripts and
// logs see only the result.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Reporter shows waits on w.
type Reporter struct {
	w  io.Writer
	on bool
	// After is how long a wait goes unmentioned (default a second); Tick
	// how often the line is redrawn.
	After, Tick time.Duration
}

// New returns a Reporter that shows waits only when w is a terminal.
func New(w io.Writer) *Reporter {
	f, ok := w.(*os.File)
	return &Reporter{w: w, on: ok && term.IsTerminal(int(f.Fd())), After: time.Second, Tick: 100 * time.Millisecond}
}

// Forced returns a Reporter that shows waits on w whatever it is (tests).
func Forced(w io.Writer, after time.Duration) *Reporter {
	return &Reporter{w: w, on: true, After: after, Tick: 20 * time.Millisecond}
}

var frames = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// Wait starts a wait for what ("the gateway at https://…"); call the
// returned func when it is over. Safe on a nil Reporter.
func (r *Reporter) Wait(what string) (done func()) {
	if r == nil || !r.on {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		select {
		case <-stop:
			return
		case <-time.After(r.After):
		}
		t := time.NewTicker(r.Tick)
		defer t.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(r.w, "\r\033[K%c waiting for %s (%ds)", frames[i%len(frames)], what, int(time.Since(start).Seconds()))
			select {
			case <-stop:
				fmt.Fprint(r.w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
		})
	}
}
