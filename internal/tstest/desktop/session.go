//go:build linux

// Package desktop runs a throwaway desktop session for tests: an Xvfb
// display, a private session D-Bus, a StatusNotifier host with its watcher
// (gtk-sni-tray-standalone --watcher, the tray bar along the bottom) and a
// notification server that records what applications notify. It reads and
// clicks tray menus over the dbusmenu interface, clicks and types with
// xdotool, and takes screenshots with ImageMagick's import.
//
// Nothing here touches the network: Xvfb does not listen on TCP and the
// bus is a unix socket in the session's directory, so programs in other
// network namespaces (ip netns exec) can use both.
package desktop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/clearpath-vpn/clearpath/internal/tstest/dbustest"
)

// Screen size of the session.
const (
	Width  = 1024
	Height = 768
	// BarHeight is the height of the tray bar along the bottom edge.
	BarHeight = 32
)

// BarColor is the tray bar's background (as gtk-sni-tray-standalone
// --color takes it); screenshots find icons by differing from it.
const BarColor = "#2b3038"

// Programs the session needs, with the Debian package providing each.
var Programs = map[string]string{
	"Xvfb":                    "xvfb",
	"dbus-daemon":             "dbus",
	"gtk-sni-tray-standalone": "haskell-gtk-sni-tray-utils",
	"import":                  "imagemagick",
	"xdotool":                 "xdotool",
}

// Missing lists the programs of Programs not on PATH, with their packages.
func Missing() []string {
	var out []string
	for prog, pkg := range Programs {
		if _, err := exec.LookPath(prog); err != nil {
			out = append(out, prog+" ("+pkg+")")
		}
	}
	return out
}

// Session is a running desktop session.
type Session struct {
	// Dir holds the bus socket and the logs of the session's programs.
	Dir string
	// Display is the X display, ":N".
	Display string
	// BusAddress is the session bus, "unix:path=...".
	BusAddress string

	bus   *dbus.Conn
	notes *notifyServer

	mu    sync.Mutex
	procs []*exec.Cmd
}

// Start runs a session with its files in dir (which must exist). On error
// whatever was started is stopped.
func Start(ctx context.Context, dir string) (*Session, error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("desktop: missing %s: run `make deps`", strings.Join(m, ", "))
	}
	s := &Session{Dir: dir, notes: &notifyServer{}}
	err := s.startX(ctx)
	if err == nil {
		err = s.startBus(ctx)
	}
	if err == nil {
		err = s.notes.export(s.bus)
	}
	if err == nil {
		err = s.startTrayHost(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Env is what a program needs to join the session: its display, its bus,
// a UTF-8 locale (LANGUAGE names a language for toolkits that want one:
// "C" is not a language tag), and no accessibility bus (there is none).
func (s *Session) Env() []string {
	return []string{"DISPLAY=" + s.Display, "DBUS_SESSION_BUS_ADDRESS=" + s.BusAddress,
		"NO_AT_BRIDGE=1", "GDK_BACKEND=x11", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "LANGUAGE=en_US", "WAYLAND_DISPLAY="}
}

// Bus is the test's own connection to the session bus.
func (s *Session) Bus() *dbus.Conn { return s.bus }

// startX runs Xvfb on the first free display (-displayfd picks it).
func (s *Session) startX(ctx context.Context) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx24", Width, Height),
		"-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	err = s.start("xvfb", cmd)
	w.Close()
	if err != nil {
		return err
	}
	line, err := readLine(ctx, r, 15*time.Second)
	if err != nil {
		return fmt.Errorf("desktop: Xvfb did not report its display: %w\n%s", err, s.log("xvfb"))
	}
	s.Display = ":" + strings.TrimSpace(line)
	return nil
}

func (s *Session) startBus(ctx context.Context) error {
	d, err := dbustest.New(s.Dir)
	if err != nil {
		return fmt.Errorf("desktop: %w", err)
	}
	if err := s.start("dbus", d.Cmd); err != nil {
		return err
	}
	if s.BusAddress, err = d.Address(ctx, 10*time.Second); err != nil {
		return fmt.Errorf("desktop: %w\n%s", err, s.log("dbus"))
	}
	s.bus, err = dbus.Connect(s.BusAddress)
	if err != nil {
		return fmt.Errorf("desktop: connect to the session bus: %w", err)
	}
	return nil
}

// startTrayHost runs gtk-sni-tray-standalone as watcher and host and waits
// until the watcher says a host is registered and the bar is drawn: from
// then on items that register are shown. The program sometimes dies at
// start (its host asks its own watcher before that is exported: "Pattern
// match failure ... Main.hs"); it is started again then.
func (s *Session) startTrayHost(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var crashed bool
		if crashed, err = s.tryTrayHost(ctx, attempt); err == nil || !crashed {
			return err
		}
	}
	return err
}

func (s *Session) tryTrayHost(ctx context.Context, attempt int) (crashed bool, err error) {
	cmd := exec.Command("gtk-sni-tray-standalone", "--watcher", "--bottom", "--end",
		"--size", fmt.Sprint(BarHeight), "--color", BarColor)
	cmd.Env = append(os.Environ(), s.Env()...)
	name := fmt.Sprintf("sni-host-%d", attempt)
	if err := s.start(name, cmd); err != nil {
		return false, err
	}
	watcher := s.bus.Object(WatcherName, WatcherPath)
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := watcher.GetProperty(WatcherName + ".IsStatusNotifierHostRegistered")
		if err == nil {
			if ok, _ := v.Value().(bool); ok {
				var shot image.Image
				if shot, err = s.Screenshot(ctx); err == nil && !far(shot.At(Width/2, Height-BarHeight/2), parseHex(BarColor), 24) {
					return false, nil
				}
			}
		}
		if exited(cmd) {
			return true, fmt.Errorf("desktop: gtk-sni-tray-standalone exited:\n%s", s.log(name))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, fmt.Errorf("desktop: no StatusNotifier host registered after 15s (%v):\n%s", err, s.log(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs cmd in its own process group with output to <name>.log.
func (s *Session) start(name string, cmd *exec.Cmd) error {
	f, err := os.Create(filepath.Join(s.Dir, name+".log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.Env == nil {
		cmd.Env = append(os.Environ(), "NO_AT_BRIDGE=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("desktop: start %s: %w", cmd.Path, err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.mu.Unlock()
	go cmd.Wait() // reaps it; ProcessState tells exited()
	return nil
}

func exited(cmd *exec.Cmd) bool {
	// Signal 0 fails once the process is gone (reaped by the Wait above).
	return cmd.Process.Signal(syscall.Signal(0)) != nil
}

func (s *Session) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, name+".log"))
	return string(b)
}

// Logs returns the output of the session's programs, for failure reports.
func (s *Session) Logs() string {
	var b strings.Builder
	for _, n := range []string{"xvfb", "dbus", "sni-host-1", "sni-host-2", "sni-host-3"} {
		fmt.Fprintf(&b, "===== %s =====\n%s\n", n, s.log(n))
	}
	return b.String()
}

// Close stops the session's programs (their whole process groups: the
// tray host's children too) and closes the bus connection.
func (s *Session) Close() error {
	if s.bus != nil {
		s.bus.Close()
	}
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i].Process
		syscall.Kill(-p.Pid, syscall.SIGTERM)
		deadline := time.Now().Add(3 * time.Second)
		for !exited(procs[i]) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	return nil
}

// readLine reads one line from r within d.
func readLine(ctx context.Context, r *os.File, d time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- res{line, err}
	}()
	select {
	case x := <-ch:
		if x.err != nil && x.line == "" {
			return "", x.err
		}
		return x.line, nil
	case <-time.After(d):
		return "", errors.New("timed out")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
