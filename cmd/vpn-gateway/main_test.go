package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// runGW runs the vpn-gateway command tree as main does and returns what it
// printed (stdout and stderr) and its exit status.
func runGW(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(&out, &out)}
	root, debug := newRoot(f)
	root.SetArgs(args)
	code := cmdutil.Execute(root, "vpn-gateway", &out, debug)
	return out.String(), code
}

// --help lists the environment variables under their CLEARPATH_ names.
func TestHelpListsEnvironment(t *testing.T) {
	out, code := runGW(t, "--help")
	if code != 0 || !strings.Contains(out, "CLEARPATH_WG_INFLIGHT") || !strings.Contains(out, "CLEARPATH_DEBUG") || !strings.Contains(out, "old VPN_ names are still read") {
		t.Errorf("vpn-gateway --help (exit %d):\n%s", code, out)
	}
}

// The one --config reaches every command that reads the file, given
// before or after the command's name; a bad file is one error naming it,
// exit 1, from each.
func TestConfigFlagReachesEveryCommand(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(bad, []byte("listen: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "--offline"}, {"reload"}, {"peers", "list"}, {"peers", "revoke", "alice"}, {"devices", "list"},
		{"devices", "free", "--user", "a", "--device", "d"}, {"users", "list"}, {"users", "disable", "a"}, {"users", "enable", "a"},
		{"audit"}, {"explain", "alice", "10.0.0.1"}, {"serve"},
	} {
		for _, a := range [][]string{append([]string{"-c", bad}, args...), append(args, "--config", bad)} {
			out, code := runGW(t, a...)
			want := 1
			if code != want || !strings.Contains(out, bad) {
				t.Errorf("vpn-gateway %s: exit %d, want %d and the file named:\n%s", strings.Join(a, " "), code, want, out)
			}
		}
	}
	// doctor's own exit status for "doctor failed" is 2.
	if out, code := runGW(t, "doctor", "-c", bad); code != 2 || !strings.Contains(out, bad) {
		t.Errorf("doctor with a bad file: exit %d:\n%s", code, out)
	}
}

// init prints the example without --config: the default of the other
// commands is not a place to write to (initcmd's tests cover writing).
func TestInitPrintsWithoutConfig(t *testing.T) {
	if out, code := runGW(t, "init"); code != 0 || out != config.Example {
		t.Fatalf("init: exit %d, printed %d bytes", code, len(out))
	}
}
