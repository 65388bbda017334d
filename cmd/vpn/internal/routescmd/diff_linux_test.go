package routescmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
)

// routes snapshot -o FILE, then routes diff FILE in a namespace: exit 0
// and "no difference", then, after another program adds a route, exit 1
// with the route marked "+" and the one message; a file that is not a
// snapshot is named.
func TestSnapshotThenDiff(t *testing.T) {
	ns := netnstest.New(t)
	dir := t.TempDir()
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		f := factory.ForTest(dir, &out, &out)
		root := cmdutil.TestRoot(f.Factory, NewCmd(f, func() (routes.System, error) { return routes.NewSystemAt(ns.Handle), nil }))
		root.SetArgs(append([]string{"routes"}, args...))
		code := cmdutil.Execute(root, "vpn", &out, nil)
		return out.String(), code
	}
	snap := filepath.Join(dir, "before.json")
	if out, code := run("snapshot", "-o", snap); code != 0 || !strings.Contains(out, "saved ") {
		t.Fatalf("snapshot: exit %d\n%s", code, out)
	}
	if out, code := run("diff", snap); code != 0 || out != "no difference\n" {
		t.Fatalf("diff right after: exit %d\n%s", code, out)
	}
	ns.IPIn("route", "add", "10.99.0.0/16", "dev", "lan0")
	out, code := run("diff", snap)
	if code != 1 || !strings.Contains(out, "+ route 10.99.0.0/16") || !strings.Contains(out, "vpn: the routing table differs from the snapshot\n") {
		t.Errorf("diff after a route was added: exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("not json"), 0o600)
	if out, code := run("diff", bad); code != 1 || !strings.Contains(out, bad+" is not a snapshot") {
		t.Errorf("diff of a non-snapshot: exit %d\n%s", code, out)
	}
	if out, code := run("dns"); code != 0 || out != "no DNS change journaled\n" {
		t.Errorf("dns without a journal: exit %d\n%s", code, out)
	}
}
