package routescmd

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/splitdns"
)

// The DNS journal against now: while the file is ours, the nameserver
// swap shows as -/+ lines and restore will put it back; once restored,
// nothing differs; a resolved link's settings show while the link exists.
func TestDNSDiff(t *testing.T) {
	state, etc := t.TempDir(), t.TempDir()
	conf := filepath.Join(etc, "resolv.conf")
	before := "# from DHCP\nnameserver 192.168.1.1\nsearch lan\n"
	os.WriteFile(conf, []byte(before), 0o644)
	if ds, err := DNSDiff(state); err != nil || len(ds) != 0 {
		t.Fatalf("no journal: %v, %v", ds, err)
	}
	if _, err := splitdns.Point(state, conf, splitdns.StubAddr); err != nil {
		t.Fatal(err)
	}
	ds, err := DNSDiff(state)
	if err != nil || len(ds) != 1 {
		t.Fatalf("%v, %v", ds, err)
	}
	got := strings.Join(ds[0].Lines, "\n")
	for _, want := range []string{"- # from DHCP", "- nameserver 192.168.1.1", "+ nameserver 127.0.74.11"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "search lan") || !ds[0].Differs || !strings.Contains(ds[0].State, "what ClearPath wrote") {
		t.Errorf("diff %+v", ds[0])
	}
	// Someone rewrites it: still differs, and the state says restore leaves it.
	os.WriteFile(conf, []byte("nameserver 9.9.9.9\n"), 0o644)
	if ds, _ = DNSDiff(state); !strings.Contains(ds[0].State, "changed by something else") || !strings.Contains(strings.Join(ds[0].Lines, "\n"), "+ nameserver 9.9.9.9") {
		t.Errorf("rewritten: %+v", ds[0])
	}
	os.WriteFile(conf, []byte(before), 0o644)
	if ds, _ = DNSDiff(state); ds[0].Differs || len(ds[0].Lines) != 0 {
		t.Errorf("back as before: %+v", ds[0])
	}
	if _, err := splitdns.Restore(state); err != nil {
		t.Fatal(err)
	}
	// macOS resolver files (a temp dir as /etc/resolver): ours shows as
	// added lines, an edited one as changed, until restore.
	rdir := filepath.Join(etc, "resolver")
	if _, err := splitdns.PointResolverDir(state, rdir, []netip.Addr{netip.MustParseAddr("10.10.0.10")}, []string{"corp.internal", "lab.corp"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rdir, "lab.corp"), []byte("nameserver 1.1.1.1\n"), 0o644)
	ds, err = DNSDiff(state)
	if err != nil || len(ds) != 2 || !ds[0].Differs || !strings.Contains(strings.Join(ds[0].Lines, "\n"), "+ nameserver 10.10.0.10") ||
		!strings.Contains(ds[1].State, "changed by something else") || !strings.Contains(strings.Join(ds[1].Lines, "\n"), "+ nameserver 1.1.1.1") {
		t.Errorf("resolver files: %+v, %v", ds, err)
	}
	if _, err := splitdns.Restore(state); err != nil {
		t.Fatal(err)
	}
	if ds, _ = DNSDiff(state); len(ds) != 0 {
		t.Errorf("after restore: %+v", ds)
	}
	j := &splitdns.Journal{Mode: splitdns.ModeResolved, Link: "wg0", Index: 7, Servers: []string{"10.10.0.10"}, Domains: []string{"corp.internal"}}
	if d := splitdns.DiffLink(j, "wg0"); !d.Differs || strings.Join(d.Lines, "|") != "+ DNS 10.10.0.10|+ Domains ~corp.internal" {
		t.Errorf("link up: %+v", d)
	}
	if d := splitdns.DiffLink(j, ""); d.Differs {
		t.Errorf("link gone: %+v", d)
	}
}
