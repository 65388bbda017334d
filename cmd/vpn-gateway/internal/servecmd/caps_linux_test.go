package servecmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// serve as a user without CAP_NET_ADMIN (nobody, via setpriv) stops
// before touching anything and says how to run it; nothing is created.
func TestServeWithoutNetAdminSaysHow(t *testing.T) {
	if os.Getenv("SERVE_CHILD") == "1" {
		f := cmdutil.New()
		root := cmdutil.TestRoot(f, NewCmd(f, nil))
		root.SetArgs([]string{"serve", "-c", os.Getenv("SERVE_CONFIG")})
		code := cmdutil.Execute(root, "vpn-gateway", os.Stdout, nil)
		if code == 0 {
			os.Stdout.WriteString("EXIT=0\n")
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run serve as nobody (setpriv)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	dir, err := os.MkdirTemp("", "serve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "gateway.yaml")
	y := strings.Replace(config.Example, "/var/lib/clearpath-gateway", state, -1)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", os.Args[0], "-test.run=^TestServeWithoutNetAdminSaysHow$")
	cmd.Env = append(os.Environ(), "SERVE_CHILD=1", "SERVE_CONFIG="+cfg)
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "serve needs CAP_NET_ADMIN (interfaces, routes, forwarding): run it as root") || strings.Contains(string(out), "EXIT=0") {
		t.Errorf("serve as nobody:\n%s", out)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("serve as nobody created %s", state)
	}
}
