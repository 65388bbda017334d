package local

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
)

// The readiness pipe: Start hands the agent it starts the write end of a
// pipe (`vpn agent --ready-fd 3`), and the agent writes one line on it
// and closes it: READY=1 once its control socket listens (the state dir's
// lock held, the journal replayed), BUSY=<reason> when another agent
// holds the lock, ERROR=<reason> when it cannot run. Start so learns the
// moment the agent answers, or why it never will, without polling the
// socket; nothing but the process Start made holds the pipe, so no other
// process (an unprivileged user's least of all) can signal on it.
const (
	ReadyFlag   = "ready-fd"
	readyLine   = "READY=1"
	busyPrefix  = "BUSY="
	errorPrefix = "ERROR="
	// maxReadyLine bounds what Start reads from the pipe.
	maxReadyLine = 4096
)

// Notifier is the agent's end of the readiness pipe: the first of Ready
// or Fail is written, later calls do nothing. A nil Notifier does
// nothing (an agent started by a service manager has no pipe).
type Notifier struct {
	once sync.Once
	f    *os.File
}

// OpenNotifier takes the inherited descriptor fd as the readiness pipe.
// It must be a pipe: anything else (a terminal, a file, a socket) is
// refused rather than written to. The descriptor is closed on exec at
// once, so no program the agent runs holds the CLI's pipe open.
func OpenNotifier(fd int) (*Notifier, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("--%s %d: %w", ReadyFlag, fd, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil, fmt.Errorf("--%s %d: not a pipe", ReadyFlag, fd)
	}
	syscall.CloseOnExec(fd)
	return &Notifier{f: os.NewFile(uintptr(fd), "ready-pipe")}, nil
}

// Ready says the control socket listens.
func (n *Notifier) Ready() { n.send(readyLine) }

// Fail says the agent exits without having served: BUSY when another
// agent holds the state dir (busy), ERROR otherwise, with err's text.
func (n *Notifier) Fail(err error, busy bool) {
	p := errorPrefix
	if busy {
		p = busyPrefix
	}
	n.send(p + oneLine(err.Error()))
}

func (n *Notifier) send(line string) {
	if n == nil {
		return
	}
	n.once.Do(func() {
		n.f.Write([]byte(line + "\n"))
		n.f.Close()
	})
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > maxReadyLine-64 {
		s = s[:maxReadyLine-64] + "…"
	}
	return s
}

// readiness is what the agent said on the pipe.
type readiness int

const (
	saidNothing readiness = iota // EOF, or a line of no known kind
	saidReady
	saidBusy
	saidError
)

// readReady reads the agent's one line from r.
func readReady(r io.Reader) (readiness, string) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, maxReadyLine), maxReadyLine).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) || !strings.HasSuffix(line, "\n") {
		return saidNothing, ""
	}
	line = strings.TrimSuffix(line, "\n")
	switch {
	case line == readyLine:
		return saidReady, ""
	case strings.HasPrefix(line, busyPrefix):
		return saidBusy, strings.TrimPrefix(line, busyPrefix)
	case strings.HasPrefix(line, errorPrefix):
		return saidError, strings.TrimPrefix(line, errorPrefix)
	}
	return saidNothing, ""
}
