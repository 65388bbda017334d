package doctor

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/routes"
)

// vpn doctor through its command with the environment injected: --snapshot
// FILE --json analyses the file (a public address but no default route:
// exit 1); --fix on a snapshot is exit 2; ids after a bare --fix are read as
// its value; a stray argument is named.
func TestDoctorCommand(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.json")
	b, _ := json.Marshal(routes.Snapshot{Addresses: []routes.Address{{Prefix: netip.MustParsePrefix("198.51.100.7/24"), Device: "eth0"}}})
	os.WriteFile(snap, b, 0o600)
	env := &Env{Now: func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }}
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		f := factory.ForTest(dir, &out, &out)
		root := cmdutil.TestRoot(f.Factory, NewCmd(f, env))
		root.SetArgs(append([]string{"doctor"}, args...))
		code := cmdutil.Execute(root, "vpn", &out, nil)
		return out.String(), code
	}
	out, code := run("--snapshot", snap, "--json", "--no-dns")
	if code != 1 || !strings.Contains(out, `"default-missing"`) {
		t.Errorf("doctor --snapshot --json: exit %d\n%s", code, out)
	}
	if out, code := run("--snapshot", snap, "--fix", "orphan-rule", "default-missing"); code != 2 || !strings.Contains(out, "vpn: doctor: --fix works on this machine, not on a --snapshot file") {
		t.Errorf("doctor --fix on a snapshot: exit %d\n%s", code, out)
	}
	if out, code := run("--snapshot", snap, "--fix=orphan-rule", "default-missing"); code != 1 || !strings.Contains(out, `unexpected argument "default-missing"`) {
		t.Errorf("doctor with a stray argument: exit %d\n%s", code, out)
	}
	if out, code := run("--snapshot", filepath.Join(dir, "missing.json")); code != 2 || !strings.Contains(out, "missing.json") {
		t.Errorf("doctor --snapshot of a missing file: exit %d\n%s", code, out)
	}
}
