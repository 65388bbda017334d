package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background program started by Node.Start. Its stdout and
// stderr go to LogPath. Close stops it; Stop stops it earlier.
type Proc struct {
	// Name identifies the process in logs and dumps ("gateway").
	Name string
	// LogPath is the file receiving the program's output.
	LogPath string
	Node    *Node
	Cmd     *exec.Cmd

	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Start runs argv inside the node in the background, output to a log file
// named after name in the lab directory. The process is killed and reaped
// by Close (and dies with this process if it is killed).
func (n *Node) Start(name string, argv ...string) (*Proc, error) {
	return n.StartEnv(name, nil, argv...)
}

// StartEnv is Start with extra environment variables ("KEY=value").
func (n *Node) StartEnv(name string, env []string, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("lab: start: empty command")
	}
	l := n.lab
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("lab: closed")
	}
	// A restarted program keeps one log: append, with a marker line.
	logPath := filepath.Join(l.Dir, sanitize(name)+".log")
	l.mu.Unlock()

	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s: start in %s: %s\n", time.Now().Format(time.TimeOnly), n.Name, strings.Join(argv, " "))

	cmd := exec.Command("ip", append([]string{"netns", "exec", n.NS}, argv...)...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s in %s: %w", name, n.Name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, Node: n, Cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	closed := l.closed
	l.mu.Unlock()
	if closed { // Close raced with us: do not leave it behind.
		p.Stop(time.Second)
		return nil, errors.New("lab: closed")
	}
	l.log.Debug("started", "name", name, "node", n.Name, "pid", cmd.Process.Pid)
	return p, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Pid is the process id (ip netns exec execs the program, so it is the
// program's own pid).
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and its Wait error.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Signal sends sig to the process if it still runs.
func (p *Proc) Signal(sig syscall.Signal) error {
	if ok, _ := p.Exited(); ok {
		return nil
	}
	return p.Cmd.Process.Signal(sig)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs, and reaps the
// process. It returns the process's exit error (nil for a clean exit or
// when it was already stopped).
func (p *Proc) Stop(grace time.Duration) error {
	p.once.Do(func() {
		if ok, _ := p.Exited(); !ok {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = p.Cmd.Process.Kill()
				<-p.done
			}
		}
	})
	<-p.done
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		// Killed by our own signal: that is what stopping means.
		return nil
	}
	return p.waitErr
}

// Log returns the process's output so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}
