package hostguard

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// nsFd opens the test namespace for nftables.
func nsFd(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	h, err := netns.GetFromName(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return int(h)
}

func nft(t *testing.T, ns *netnstest.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out)
}

var counterValues = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// ruleLines are the rule lines of `nft list table inet clearpath_gw`.
func ruleLines(listing string) string {
	var b strings.Builder
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "iifname") {
			b.WriteString(counterValues.ReplaceAllString(l, "counter") + "\n")
		}
	}
	return b.String()
}

// What Apply installs is what Plan says, as nft itself decodes it; a
// second Apply replaces the table (never two, never a merge); Remove
// deletes only our table: a table of someone else in the namespace is
// left exactly as it was.
func TestApplyReplaceRemoveInANamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ns := netnstest.New(t)
	fd := nsFd(t, ns)
	// Someone else's table, with a rule of its own.
	nft(t, ns, "add table inet other; add chain inet other c { type filter hook input priority 0; }; add rule inet other c tcp dport 22 accept")
	otherBefore := nft(t, ns, "list table inet other")

	spec := FromConfig(parse(t, testConfig))
	if err := Apply(spec, InNetNS(fd)); err != nil {
		t.Fatal(err)
	}
	listing := nft(t, ns, "list table inet "+TableName)
	t.Logf("after Apply:\n%s", listing)
	if got, want := ruleLines(listing), lines(Plan(spec)); got != want {
		t.Errorf("nft decodes the installed rules as:\n%s\nwant (Plan):\n%s", got, want)
	}
	if !strings.Contains(listing, "type filter hook input priority filter; policy accept;") {
		t.Errorf("chain %s is not an input-hook filter chain at priority filter:\n%s", ChainName, listing)
	}

	// Reload: eng loses tcp/53, ops goes away.
	c := parse(t, strings.Replace(testConfig, "local_ports: [udp/53, tcp/53]", "local_ports: [udp/53]", 1))
	c.Networks = c.Networks[:1]
	spec2 := FromConfig(c)
	if err := Apply(spec2, InNetNS(fd)); err != nil {
		t.Fatal(err)
	}
	listing = nft(t, ns, "list table inet "+TableName)
	if got, want := ruleLines(listing), lines(Plan(spec2)); got != want {
		t.Errorf("after the second Apply:\n%s\nwant:\n%s", got, want)
	}
	if n := strings.Count(nft(t, ns, "list tables"), "table inet "+TableName); n != 1 {
		t.Errorf("%d tables %s after two Apply, want 1", n, TableName)
	}
	if ok, err := Exists(InNetNS(fd)); !ok || err != nil {
		t.Errorf("Exists = %v, %v", ok, err)
	}

	for i := 0; i < 2; i++ { // idempotent
		if err := Remove(InNetNS(fd)); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if ok, err := Exists(InNetNS(fd)); ok || err != nil {
		t.Errorf("after Remove: Exists = %v, %v", ok, err)
	}
	if tables := nft(t, ns, "list tables"); strings.Contains(tables, TableName) {
		t.Errorf("after Remove:\n%s", tables)
	}
	if after := nft(t, ns, "list table inet other"); after != otherBefore {
		t.Errorf("someone else's table changed:\n--- before\n%s\n--- after\n%s", otherBefore, after)
	}
}
