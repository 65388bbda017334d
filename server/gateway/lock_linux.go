package gateway

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockName is the instance lock's file in state_dir.
const LockName = "gateway.lock"

// NetnsLockName is the abstract unix socket a running gateway holds in its
// network namespace.
const NetnsLockName = "@clearpath-gateway"

// instanceLock keeps a second `vpn-gateway serve` from touching what a
// running one set up: an exclusive flock on <state_dir>/gateway.lock
// (the journal's directory) and the abstract socket @clearpath-gateway,
// bound once per network namespace (the routing state the gateways would
// share: another state_dir does not make it another host). The kernel
// releases both when the process dies, kill -9 included.
type instanceLock struct {
	f  *os.File
	ns *net.UnixListener
}

// acquireLock takes both locks; nsName is NetnsLockName but in tests.
func acquireLock(stateDir, nsName string) (*instanceLock, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", stateDir, err)
	}
	path := filepath.Join(stateDir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("instance lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(b[:n]))
			if who != "" {
				who = " (pid " + who + ")"
			}
			return nil, fmt.Errorf("another vpn-gateway serve is running with state_dir %s%s: it holds %s; stop it first (nothing was changed)", stateDir, who, path)
		}
		return nil, fmt.Errorf("instance lock %s: %w", path, err)
	}
	ns, err := net.ListenUnix("unix", &net.UnixAddr{Name: nsName, Net: "unix"})
	if err != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("another vpn-gateway serve is running in this network namespace (it holds the abstract socket %s), with another state_dir than %s: stop it first (nothing was changed)", nsName, stateDir)
		}
		return nil, fmt.Errorf("instance lock %s: %w", nsName, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &instanceLock{f: f, ns: ns}, nil
}

func (l *instanceLock) release() {
	if l != nil && l.f != nil {
		l.ns.Close()
		unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		l.f.Close()
	}
}
