package tray

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// buildVPN compiles the real vpn binary for the test.
func buildVPN(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vpn")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/vpn")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vpn: %v\n%s", err, b)
	}
	return out
}

// The tray's doctor is `vpn doctor`: a namespace with what a killed agent
// leaves (ClearPath's rule and route) gets the finding with a Fix, the fix
// removes exactly those, and the report says so.
func TestCLIDoctorFindsAndFixesLeftoversInANamespace(t *testing.T) {
	ns := netnstest.New(t)
	vpn := buildVPN(t)
	// Every vpn run happens inside the namespace, as if the tray ran there.
	wrapper := filepath.Join(t.TempDir(), "vpn-in-ns")
	script := "#!/bin/sh\nexec ip netns exec " + ns.Name + " " + vpn + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cli := CLI{Path: wrapper, StateDir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ns.IPIn("route", "add", "10.10.0.0/16", "dev", "lan0", "table", "7411", "proto", "197")
	ns.IPIn("rule", "add", "priority", "4200", "not", "fwmark", "0x7411", "lookup", "7411", "protocol", "197")

	rep, err := cli.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, f := range rep.Findings {
		if f.ID == "leftover-owned" {
			found = true
			if !f.Fixable || len(f.Evidence) != 2 {
				t.Fatalf("leftover finding: %+v", f)
			}
		}
	}
	if !found {
		t.Fatalf("no leftover-owned finding in %+v", rep.Findings)
	}
	rep, err = cli.Fix(ctx, "leftover-owned")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.ID == "leftover-owned" {
			t.Fatalf("still reported after the fix: %+v", f)
		}
	}
	if out := ns.IPIn("route", "show", "table", "7411"); strings.TrimSpace(out) != "" {
		t.Fatalf("table 7411 after the fix:\n%s", out)
	}
	if out := ns.IPIn("rule", "show"); strings.Contains(out, "7411") {
		t.Fatalf("rules after the fix:\n%s", out)
	}
	if _, err := cli.Fix(ctx, "a,b"); err == nil {
		t.Fatal("a list of ids was passed through to --fix")
	}
}
