package lab

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// SkipUnlessRoot skips t when the process is not root.
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
}

// NewT creates a lab for a test: skipped when not root, closed by
// t.Cleanup, and on failure every process log is dumped into the test log
// before teardown. If the test's deadline comes close the lab is closed
// early, because a `go test -timeout` panic runs no cleanups.
func NewT(t testing.TB, opts Options) *Lab {
	t.Helper()
	SkipUnlessRoot(t)
	l, err := New(opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	cleanupT(t, l)
	return l
}

// ReferenceT builds the reference topology for a test (see NewT).
func ReferenceT(t testing.TB, opts Options) *Reference {
	t.Helper()
	l := NewT(t, opts)
	r, err := BuildReference(l)
	if err != nil {
		t.Fatalf("lab: reference topology: %v", err)
	}
	return r
}

func cleanupT(t testing.TB, l *Lab) {
	stop := make(chan struct{})
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := dt.Deadline(); ok {
			go func() {
				select {
				case <-time.After(time.Until(dl) - 15*time.Second):
					fmt.Fprintf(os.Stderr, "lab %s: test deadline is near, tearing down now\n", l.Prefix)
					fmt.Fprint(os.Stderr, l.Dump())
					l.Close()
				case <-stop:
				}
			}()
		}
	}
	t.Cleanup(func() {
		close(stop)
		if t.Failed() {
			t.Log(l.Dump())
		}
		if err := l.Close(); err != nil {
			t.Errorf("lab teardown: %v", err)
		}
	})
}

// dumpLimit bounds each log in a failure dump.
const dumpLimit = 48 << 10

// Dump returns the output of every process the lab started and of every
// log file added with AddLogFile (the tail of each if long), for failure
// reports.
func (l *Lab) Dump() string {
	l.mu.Lock()
	var files []namedFile
	seen := map[string]bool{}
	for _, p := range l.procs {
		if !seen[p.LogPath] {
			seen[p.LogPath] = true
			files = append(files, namedFile{p.Name + " in " + p.Node.Name, p.LogPath})
		}
	}
	files = append(files, l.extraLog...)
	l.mu.Unlock()
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		fmt.Fprintf(&b, "\n===== log of %s (%s) =====\n", f.name, f.path)
		if err != nil {
			fmt.Fprintf(&b, "(unreadable: %v)\n", err)
			continue
		}
		if len(data) > dumpLimit {
			fmt.Fprintf(&b, "(... %d bytes cut ...)\n", len(data)-dumpLimit)
			data = data[len(data)-dumpLimit:]
		}
		b.Write(data)
	}
	return b.String()
}
