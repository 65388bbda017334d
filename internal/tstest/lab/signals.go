package lab

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Open labs are closed on SIGINT/SIGTERM before the process exits, so an
// interrupted test or demo leaves nothing behind.
var (
	openMu  sync.Mutex
	openSet = map[*Lab]struct{}{}
	sigCh   chan os.Signal
)

func register(l *Lab) {
	openMu.Lock()
	defer openMu.Unlock()
	openSet[l] = struct{}{}
	if sigCh == nil {
		sigCh = make(chan os.Signal, 1)
		signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
		go onSignal(sigCh)
	}
}

func unregister(l *Lab) {
	openMu.Lock()
	defer openMu.Unlock()
	delete(openSet, l)
}

func onSignal(ch chan os.Signal) {
	sig := <-ch
	fmt.Fprintf(os.Stderr, "lab: %v: tearing down network namespaces\n", sig)
	CloseAll()
	code := 130
	if sig == syscall.SIGTERM {
		code = 143
	}
	os.Exit(code)
}

// CloseAll closes every open lab of this process. Programs that exit
// without returning from main (log.Fatal) call it first.
func CloseAll() {
	openMu.Lock()
	labs := make([]*Lab, 0, len(openSet))
	for l := range openSet {
		labs = append(labs, l)
	}
	openMu.Unlock()
	for _, l := range labs {
		if err := l.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "lab %s: %v\n", l.Prefix, err)
		}
	}
}
