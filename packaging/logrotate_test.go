package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// The logrotate snippet names the files the programs write by default,
// signals the gateway with SIGUSR1 (which only reopens the flow log), and
// logrotate itself reads it without an error; a broken copy is reported.
func TestLogrotateSnippet(t *testing.T) {
	b, err := os.ReadFile("logrotate/clearpath")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	def, err := config.Parse([]byte(config.Example))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{def.Flows.Log + " {", "/var/lib/clearpath/agent.log {", "--signal=USR1 --kill-whom=main clearpath-gateway.service", "copytruncate"} {
		if !strings.Contains(s, want) {
			t.Errorf("snippet lacks %q", want)
		}
	}
	lr, err := exec.LookPath("logrotate")
	if err != nil {
		t.Skip("logrotate not installed (apt-get install -y logrotate): snippet not parsed")
	}
	check := func(text string) (string, error) {
		p := filepath.Join(t.TempDir(), "clearpath")
		os.WriteFile(p, []byte(text), 0o644)
		out, err := exec.Command(lr, "-d", "-s", filepath.Join(t.TempDir(), "state"), p).CombinedOutput()
		return string(out), err
	}
	if out, err := check(s); err != nil || strings.Contains(out, "error") {
		t.Errorf("logrotate -d: %v\n%s", err, out)
	}
	if out, err := check(strings.Replace(s, "copytruncate", "copytrunkate", 1)); err == nil && !strings.Contains(out, "error") {
		t.Errorf("logrotate -d accepted a misspelt directive:\n%s", out)
	}
}
