package factory

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A user (nobody, via setpriv) runs vpn up with no agent running: told
// how to start the service, and no agent is started.
func TestNoAgentTellsAUserHowToStartIt(t *testing.T) {
	if os.Getenv("FACTORY_CHILD") == "1" {
		f := ForTest(os.Getenv("FACTORY_DIR"), os.Stdout, os.Stderr)
		_, err := f.EnsureAgent(context.Background())
		fmt.Printf("ERR=%v\n", err)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the check as nobody (setpriv)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) missing")
	}
	dir, err := os.MkdirTemp("", "factory-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", os.Args[0], "-test.run=^TestNoAgentTellsAUserHowToStartIt$")
	cmd.Env = append(os.Environ(), "FACTORY_CHILD=1", "FACTORY_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ERR=no agent is running, and starting one needs root: start the service (sudo systemctl start clearpath-agent;") {
		t.Errorf("as nobody:\n%s", out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused start left %v in the state dir", entries)
	}
}
