package statedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks apply to root, and chown needs it")
	}
}

func TestCheckRefusesWhatOthersCouldWrite(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Chown(p, uid, 0)
		return p
	}
	good := mk("good", 0o700, 0)
	if err := Check(good); err != nil {
		t.Fatalf("root-owned 0700 dir refused: %v", err)
	}
	if err := Check(mk("readable", 0o755, 0)); err != nil {
		t.Fatalf("root-owned 0755 dir refused: %v", err)
	}
	for _, c := range []struct {
		name, dir, want string
	}{
		{"owned by nobody", mk("user", 0o700, 65534), "owned by uid 65534, not root"},
		{"world-writable", mk("world", 0o777, 0), "writable by group or others (mode 0777)"},
		{"group-writable", mk("group", 0o770, 0), "writable by group or others (mode 0770)"},
	} {
		err := Check(c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
	// A root-owned dir below a user's dir: the user can swap it.
	parent := mk("parent", 0o755, 65534)
	inner := filepath.Join(parent, "state")
	os.Mkdir(inner, 0o700)
	if err := Check(inner); err == nil || !strings.Contains(err.Error(), "parent") {
		t.Errorf("dir under a user-owned parent: got %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(good, link)
	if err := Check(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlinked state dir: got %v", err)
	}
	// Ensure creates a missing dir 0700 and accepts it.
	fresh := filepath.Join(good, "a", "b")
	if err := Ensure(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("created with mode %v", fi.Mode().Perm())
	}
}

func TestOpenDoesNotFollowSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(target, []byte("keep\n"), 0o600)
	os.Symlink(target, filepath.Join(dir, "agent.log"))
	f, err := OpenFile(dir, "agent.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		f.WriteString("overwritten")
		f.Close()
		t.Fatal("opened a symlink")
	}
	if !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("got %v, want ELOOP", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "agent.log")); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("read through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Fatalf("target changed: %q", b)
	}
}
