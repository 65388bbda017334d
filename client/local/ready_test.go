package local

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The agent's end writes one line, the first of Ready or Fail, and closes
// the pipe; Start's end reads which it was.
func TestReadinessPipe(t *testing.T) {
	for _, tc := range []struct {
		name   string
		send   func(n *Notifier)
		want   readiness
		reason string
	}{
		{"ready", func(n *Notifier) { n.Ready(); n.Fail(errors.New("late"), false) }, saidReady, ""},
		{"busy", func(n *Notifier) { n.Fail(errors.New("an agent is running for /x"), true); n.Ready() }, saidBusy, "an agent is running for /x"},
		{"error", func(n *Notifier) { n.Fail(errors.New("listen:\nno"), false) }, saidError, "listen: no"},
		{"nothing", func(n *Notifier) { n.f.Close() }, saidNothing, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			// The Notifier owns its descriptor, as the agent's inherited
			// one: a copy, so w's own close cannot close a reused number.
			fd, err := syscall.Dup(int(w.Fd()))
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			n, err := OpenNotifier(fd)
			if err != nil {
				t.Fatal(err)
			}
			tc.send(n)
			what, reason := readReady(r)
			if what != tc.want || reason != tc.reason {
				t.Errorf("read %v %q, want %v %q", what, reason, tc.want, tc.reason)
			}
		})
	}
	// A nil Notifier (no pipe: a service manager started the agent) is
	// silent.
	var n *Notifier
	n.Ready()
	n.Fail(errors.New("x"), false)
}

// Anything but the known lines, a line without its end, or one longer
// than the bound reads as nothing said.
func TestReadinessPipeRefusesOtherLines(t *testing.T) {
	for _, in := range []string{"", "READY=1", "READY=10\n", "ready=1\n", "HELLO\n", strings.Repeat("E", maxReadyLine+10) + "\n"} {
		if what, _ := readReady(strings.NewReader(in)); what != saidNothing {
			t.Errorf("%.20q read as %v", in, what)
		}
	}
}

// --ready-fd must name a pipe: a file, a terminal or a socket is refused,
// never written to.
func TestNotifierWantsAPipe(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "not-a-pipe"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := OpenNotifier(int(f.Fd())); err == nil || !strings.Contains(err.Error(), "not a pipe") {
		t.Errorf("a regular file as the readiness pipe: %v", err)
	}
	if _, err := OpenNotifier(1 << 20); err == nil {
		t.Error("a closed descriptor as the readiness pipe: no error")
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("wrote %d bytes to the file", fi.Size())
	}
}
