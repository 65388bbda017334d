package routescmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
	"github.com/clearpath-vpn/clearpath/routes"
)

// upAgent answers status as a running agent on its tunnel device would;
// only the interface name matters to `vpn routes show`.
type upAgent struct{ iface string }

func (a upAgent) Status() control.Status {
	return control.Status{State: control.StateUp, Interface: a.iface}
}
func (upAgent) Up(context.Context, control.UpRequest) (control.Status, error) {
	return control.Status{}, nil
}
func (upAgent) Down(context.Context) (control.Status, error) { return control.Status{}, nil }

func show(t *testing.T, ns *netnstest.NS, dir string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	f := factory.ForTest(dir, &out, &errOut)
	cmd := NewCmd(f, func() (routes.System, error) { return routes.NewSystemAt(ns.Handle), nil })
	cmd.SetArgs(append([]string{"show"}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatalf("routes show %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// The tunnel's /32 and /128 (added with noprefixroute, so no route names
// them) are listed as ours: on the device our routes use, and on the
// running agent's device before any route points at it. The LAN's
// addresses are not ours.
func TestShowListsTunnelAddresses(t *testing.T) {
	ns := netnstest.New(t)
	dir := t.TempDir()
	for _, dev := range []string{"cp7", "cp8"} {
		ns.IPIn("tuntap", "add", "dev", dev, "mode", "tun") // what wireguard-go makes
		ns.IPIn("link", "set", dev, "up")
	}
	ns.IPIn("addr", "add", "100.64.0.2/32", "dev", "cp7", "noprefixroute")
	ns.IPIn("addr", "add", "fd00:64::2/128", "dev", "cp7", "noprefixroute", "nodad")
	ns.IPIn("addr", "add", "100.64.0.3/32", "dev", "cp8", "noprefixroute")
	ns.IPIn("route", "add", "10.20.0.0/16", "dev", "cp7", "table", "7411", "proto", "197")

	var snap routes.Snapshot
	raw := show(t, ns, dir, "--json")
	if err := json.Unmarshal([]byte(raw), &snap); err != nil {
		t.Fatal(err)
	}
	// One JSON shape: schema first, no rules here but [] rather than null.
	if !strings.HasPrefix(raw, "{\n  \"schema\": \"clearpath.routes/v1\",") || strings.Contains(raw, "null") || !strings.Contains(raw, `"rules": []`) {
		t.Errorf("routes show --json is not in the one JSON shape:\n%s", raw)
	}
	got := map[string]bool{}
	for _, a := range snap.Addresses {
		got[a.Prefix.String()+" "+a.Device] = true
	}
	if !got["100.64.0.2/32 cp7"] || !got["fd00:64::2/128 cp7"] {
		t.Fatalf("--json addresses %v: want the tunnel's /32 and /128 on cp7", snap.Addresses)
	}
	for k := range got {
		if !strings.HasSuffix(k, " cp7") {
			t.Fatalf("--json lists %s as ours (no agent runs; only cp7 carries our routes)", k)
		}
	}
	if len(snap.Links) != 1 || snap.Links[0].Name != "cp7" {
		t.Fatalf("--json links %v, want cp7 only", snap.Links)
	}

	// With an agent up on cp8, its address is ours too.
	ln, err := net.Listen("unix", control.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control.NewServer(upAgent{"cp8"}, nil, control.Policy{Open: true})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	text := show(t, ns, dir)
	for _, want := range []string{"100.64.0.2/32 dev cp7   [clearpath]", "fd00:64::2/128 dev cp7   [clearpath]", "100.64.0.3/32 dev cp8   [clearpath]"} {
		if !strings.Contains(text, want) {
			t.Fatalf("routes show lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "10.1.2.10") {
		t.Fatalf("routes show lists the LAN's address as ours:\n%s", text)
	}
	all := show(t, ns, dir, "--all")
	if !strings.Contains(all, "10.1.2.10/24 dev lan0\n") || !strings.Contains(all, "100.64.0.3/32 dev cp8   [clearpath]") {
		t.Fatalf("routes show --all: the LAN's address unmarked, ours marked:\n%s", all)
	}
}

// `vpn routes restore` (agent.RecoverOffline, as `vpn down` without an
// agent): refused while an agent answers, nothing touched; with none, what
// a killed agent left (our rule and route, no journal) is swept, and the
// LAN's routes stay.
func TestRestoreSweepsLeftovers(t *testing.T) {
	ns := netnstest.New(t)
	dir := t.TempDir()
	ns.IPIn("route", "add", "10.10.0.0/16", "dev", "lan0", "table", "7411", "proto", "197")
	ns.IPIn("rule", "add", "priority", "4200", "not", "fwmark", "0x7411", "lookup", "7411", "protocol", "197")
	restore := func() (string, string, error) {
		var out, errOut bytes.Buffer
		f := factory.ForTest(dir, &out, &errOut)
		cmd := NewCmd(f, func() (routes.System, error) { return routes.NewSystemAt(ns.Handle), nil })
		cmd.SetArgs([]string{"restore"})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}

	ln, err := net.Listen("unix", control.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control.NewServer(upAgent{"cp0"}, nil, control.Policy{Open: true})}
	go srv.Serve(ln)
	if _, _, err := restore(); err == nil || !strings.Contains(err.Error(), "an agent is running: use `vpn down`") {
		t.Fatalf("restore with an agent answering: %v", err)
	}
	if out := ns.IPIn("rule", "show"); !strings.Contains(out, "lookup 7411") {
		t.Fatalf("the refused restore removed our rule:\n%s", out)
	}
	srv.Close()

	out, errOut, err := restore()
	if err != nil || !strings.HasPrefix(out, "0 changes undone, 2 leftovers removed\n") || errOut != "" {
		t.Fatalf("restore: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if out := ns.IPIn("route", "show", "table", "7411"); strings.TrimSpace(out) != "" {
		t.Fatalf("table 7411 after the restore:\n%s", out)
	}
	if out := ns.IPIn("rule", "show"); strings.Contains(out, "7411") {
		t.Fatalf("rules after the restore:\n%s", out)
	}
	if out := ns.IPIn("route", "show"); !strings.Contains(out, "default via 10.1.2.1 dev lan0") {
		t.Fatalf("the LAN's routes went:\n%s", out)
	}
}
