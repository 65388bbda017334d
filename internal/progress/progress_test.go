package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// A long wait is named, with a spinner, and the line is erased at the
// end; a short one prints nothing; off a terminal nothing ever prints.
func TestWaitsAreShownOnlyWhenLongAndOnATerminal(t *testing.T) {
	var b bytes.Buffer
	r := Forced(&b, 30*time.Millisecond)
	done := r.Wait("the gateway at https://vpn.example.com")
	time.Sleep(150 * time.Millisecond)
	done()
	done() // twice is fine
	out := b.String()
	if !strings.Contains(out, "waiting for the gateway at https://vpn.example.com (0s)") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("long wait: %q", out)
	}
	b.Reset()
	r.Wait("quick")()
	if b.Len() != 0 {
		t.Errorf("short wait printed %q", b.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	q := New(f)
	q.After = time.Millisecond
	d := q.Wait("anything")
	time.Sleep(50 * time.Millisecond)
	d()
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Errorf("a file (not a terminal) got %d bytes", fi.Size())
	}
	var nilR *Reporter
	nilR.Wait("x")()
}
