package agent

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks guard root, and the attacker is nobody (setpriv)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
}

// nobody runs a shell command as uid/gid 65534.
func nobody(t *testing.T, script string) {
	t.Helper()
	out, err := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %s: %v\n%s", script, err, out)
	}
}

// A user who owns the state dir (or can write it) plants a journal naming
// a route and a symlinked agent.log pointing at a root-only file. Root's
// `vpn routes restore`, `vpn down` and the agent all take the lock first,
// and the lock refuses the dir naming the fix: nothing is replayed and the
// root file is untouched.
func TestUserWritableStateDirIsRefused(t *testing.T) {
	needRoot(t)
	base, err := os.MkdirTemp("", "cp-statedir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	secret := filepath.Join(base, "secret")
	os.WriteFile(secret, []byte("root only\n"), 0o600)
	for _, c := range []struct{ name, want string }{
		{"owned", "owned by uid 65534, not root"},
		{"writable", "writable by group or others (mode 0777)"},
	} {
		dir := filepath.Join(base, c.name)
		os.Mkdir(dir, 0o755)
		if c.name == "owned" {
			os.Chown(dir, 65534, 65534)
		} else {
			os.Chmod(dir, 0o777)
		}
		var unlock func()
		nobody(t, `printf '{"v":1,"seq":1,"phase":"intent","change":{"op":"add-route","route":{"family":4,"table":254,"dst":"0.0.0.0/0","protocol":3}},"time":"2026-01-01T00:00:00Z"}\n' > `+dir+`/journal && ln -s `+secret+` `+dir+`/agent.log && ln -s `+secret+` `+dir+`/agent.lock`)
		unlock, err = Lock(dir, 0)
		if err == nil {
			unlock()
			t.Fatalf("%s: root took the lock of a state dir nobody controls", c.name)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "fix: sudo") {
			t.Errorf("%s: %v; want %q and the fix", c.name, err, c.want)
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Fatalf("the root-only file changed: %q", b)
	}
	// The same dir made root's again (the printed fix) is accepted, and a
	// symlink left in it is still not followed.
	dir := filepath.Join(base, "owned")
	os.Chown(dir, 0, 0)
	os.Chmod(dir, 0o700)
	var unlock func()
	unlock, err = Lock(dir, 0)
	if err == nil {
		unlock()
		t.Fatal("the lock followed agent.lock's symlink")
	}
	if !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("lock through a symlink: %v", err)
	}
	os.Remove(filepath.Join(dir, "agent.lock"))
	unlock, err = Lock(dir, 0)
	if err != nil {
		t.Fatalf("after the fix: %v", err)
	}
	unlock()
}

// The agent's socket: root:<group> 0660 with a group, 0600 without, never
// created open (umask 0177); its directory must be root's.
func TestSocketModeAndGroup(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	a := &Agent{dir: base, log: slog.New(slog.NewTextHandler(io.Discard, nil)), cfg: Config{Group: "54321"}}
	pol, err := a.policy()
	if err != nil || !pol.HasGroup || pol.Group != 54321 {
		t.Fatalf("policy: %+v %v", pol, err)
	}
	sock := filepath.Join(base, "run", "agent.sock")
	ln, err := listen(sock, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, _ := os.Stat(sock)
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Uid != 0 || st.Gid != 54321 {
		t.Errorf("socket %v uid %d gid %d, want 0660 root:54321", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	ln.Close()
	a.cfg.Group = "-"
	pol, _ = a.policy()
	ln, err = listen(sock, pol)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, _ := os.Stat(sock); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket without a group: %v, want 0600", fi.Mode().Perm())
	}
	// A socket dir the user controls is refused.
	udir := filepath.Join(base, "user")
	os.Mkdir(udir, 0o755)
	os.Chown(udir, 65534, 65534)
	if _, err := listen(filepath.Join(udir, "agent.sock"), pol); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("socket in a user's dir: %v", err)
	}
	if control.SocketFor(control.DefaultStateDir) != "/run/clearpath/agent.sock" {
		t.Errorf("default socket %s", control.SocketFor(control.DefaultStateDir))
	}
}
