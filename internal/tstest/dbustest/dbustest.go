// Package dbustest runs a private D-Bus daemon for tests: a session bus of
// the test's own, on a socket in a temporary directory, with no service
// activation (nothing starts behind the test's back) and never the
// machine's buses. The caller starts and stops the process, so a harness
// can log and reap it its own way.
package dbustest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const config = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// ErrNotInstalled: there is no dbus-daemon to run (apt-get install dbus).
var ErrNotInstalled = errors.New("dbus-daemon not installed (apt-get install dbus)")

// Daemon is a dbus-daemon ready to start: Cmd, then Address.
type Daemon struct {
	Cmd  *exec.Cmd
	r, w *os.File // the daemon prints its address on w (its fd 3)
}

// New writes the bus configuration into dir and returns the daemon's
// command, not yet started.
func New(dir string) (*Daemon, error) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		return nil, ErrNotInstalled
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, config, filepath.Join(dir, "bus")), 0o600); err != nil {
		return nil, fmt.Errorf("dbustest: write %s: %w", conf, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("dbustest: %w", err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=3")
	cmd.ExtraFiles = []*os.File{w}
	return &Daemon{Cmd: cmd, r: r, w: w}, nil
}

// Address waits, once Cmd has started, for the address the daemon prints
// when it listens.
func (d *Daemon) Address(ctx context.Context, timeout time.Duration) (string, error) {
	d.w.Close() // the child holds its own copy; EOF if it dies
	defer d.r.Close()
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(d.r).ReadString('\n')
		ch <- res{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("dbustest: dbus-daemon printed no address: %w", r.err)
		}
		return strings.TrimSpace(r.line), nil
	case <-time.After(timeout):
		return "", fmt.Errorf("dbustest: dbus-daemon printed no address within %v", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
