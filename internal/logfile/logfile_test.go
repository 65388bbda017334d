package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logrotate's way: move the file aside, send SIGUSR1; the next lines go
// to a new file at the path, the moved one keeps what came before, and a
// symlink planted at the path is refused (the old file stays in use).
func TestReopenOnHUPAfterAMove(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "flows.jsonl")
	l, err := Open(p, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var errs []error
	l.ReopenOn(func(err error) { errs = append(errs, err) }, syscall.SIGUSR1, syscall.SIGHUP)
	l.Write([]byte("one\n"))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("two\n")) // still to the moved file, as before a signal
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.Write([]byte("three\n"))
	old, _ := os.ReadFile(p + ".1")
	cur, err := os.ReadFile(p)
	if string(old) != "one\ntwo\n" || string(cur) != "three\n" || err != nil {
		t.Fatalf("moved file %q, new file %q (%v)", old, cur, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("new file mode %04o", fi.Mode().Perm())
	}

	os.Rename(p, p+".2")
	os.Symlink("/etc/passwd", p)
	if err := l.Reopen(); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("reopen through a symlink: %v", err)
	}
	l.Write([]byte("four\n"))
	if b, _ := os.ReadFile(p + ".2"); string(b) != "three\nfour\n" {
		t.Errorf("after a refused reopen the old file is kept: %q", b)
	}
	if len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
}
