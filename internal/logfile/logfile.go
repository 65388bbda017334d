// Package logfile is an append-only log file that can be reopened by path,
// so logrotate (or a person) can move it aside and signal the process
// (SIGUSR1 or SIGHUP): writes then go to a new file at the same path, none is lost
// and the old file is closed. The gateway's flow log uses it.
package logfile

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// File is safe for concurrent use.
type File struct {
	path string
	perm os.FileMode
	mu   sync.Mutex
	f    *os.File
	stop chan struct{}
}

// Open opens path for appending (created with perm, O_NOFOLLOW: a symlink
// planted at the path is refused).
func Open(path string, perm os.FileMode) (*File, error) {
	lf := &File{path: path, perm: perm}
	f, err := lf.open()
	if err != nil {
		return nil, err
	}
	lf.f = f
	return lf, nil
}

func (l *File) open() (*os.File, error) {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, l.perm)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", l.path, err)
	}
	return f, nil
}

// Write appends p.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	return l.f.Write(p)
}

// Reopen switches to the file now at the path (a new one after a move);
// on failure the current file stays in use.
func (l *File) Reopen() error {
	f, err := l.open()
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// ReopenOn reopens the file at every one of sigs until Close; failures go
// to onErr. The gateway reopens at SIGUSR1 (logrotate's signal: nothing
// else happens) and SIGHUP (which also reloads its configuration).
func (l *File) ReopenOn(onErr func(error), sigs ...os.Signal) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, sigs...)
	l.mu.Lock()
	l.stop = make(chan struct{})
	stop := l.stop
	l.mu.Unlock()
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-stop:
				return
			case <-hup:
				if err := l.Reopen(); err != nil && onErr != nil {
					onErr(err)
				}
			}
		}
	}()
}

// Close closes the file and stops reopening.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop != nil {
		close(l.stop)
		l.stop = nil
	}
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Fd is the current file's descriptor (to hand to a child as its output).
func (l *File) Fd() *os.File {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f
}
