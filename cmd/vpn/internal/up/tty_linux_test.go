package up

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real vpn binary against a gateway that accepts and never answers:
// under a terminal (script(1) gives it a pty) the wait is named after a
// second (vpn up, vpn login); with its output piped, nothing but the
// result is printed.
func TestUpNamesTheWaitUnderARealTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vpn")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (bsdutils) missing: no pty to run vpn under")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir, "github.com/clearpath-vpn/clearpath/cmd/vpn")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	server := "http://" + ln.Addr().String()
	vpn := filepath.Join(dir, "vpn") + " up --allow-http --server " + server
	env := append(os.Environ(), "CLEARPATH_CONFIG_DIR="+filepath.Join(dir, "cfg"), "CLEARPATH_STATE_DIR="+filepath.Join(dir, "state"), "TERM=xterm")
	run := func(name string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		// vpn runs under script or sh: end the whole process group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	tty := run(script, "-qec", vpn, "/dev/null")
	if !strings.Contains(tty, "waiting for the gateway at "+server+" and your login (1s)") {
		t.Errorf("under a terminal:\n%q", tty)
	}
	piped := run("sh", "-c", vpn)
	if strings.Contains(piped, "waiting") {
		t.Errorf("piped:\n%q", piped)
	}
	// vpn login waits the same way.
	login := filepath.Join(dir, "vpn") + " login --allow-http --server " + server
	if tty := run(script, "-qec", login, "/dev/null"); !strings.Contains(tty, "waiting for the gateway at "+server+" and your login (1s)") {
		t.Errorf("vpn login under a terminal:\n%q", tty)
	}
}
