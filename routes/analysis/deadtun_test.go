package analysis

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/routes"
)

// withDeadTun adds what OpenVPN's persist-tun leaves after the daemon
// died (attached 0), or while it runs (attached 1): tun0 is up with
// routes for 10.8.0.0/24 and fd08::/64.
func withDeadTun(s *routes.Snapshot, attached int) *routes.Snapshot {
	s.Links = append(s.Links, routes.Link{Index: 9, Name: "tun0", Type: "tuntap", Up: true, MTU: 1500, NoCarrier: attached == 0,
		Tun: &routes.TunInfo{Persistent: true, Attached: attached}})
	s.Addresses = append(s.Addresses, routes.Address{Device: "tun0", Prefix: p("10.8.0.6/24")}, routes.Address{Device: "tun0", Prefix: p("fd08::6/64")})
	s.Routes = append(s.Routes, r4(254, "10.8.0.0/24", "", "tun0", 2), r4(254, "fd08::/64", "", "tun0", 2), r4(254, "fe80::/64", "", "tun0", 2),
		r4(254, "172.16.0.0/12", "10.8.0.1", "tun0", 3))
	return s
}

// withNoCarrierTun: a tunnel device the snapshot knows only by name and
// carrier (a foreign or older snapshot), up without carrier, holding
// def1-style halves of the internet: everything goes nowhere.
func withNoCarrierTun(s *routes.Snapshot) *routes.Snapshot {
	s.Links = append(s.Links, routes.Link{Index: 9, Name: "tun1", Up: true, NoCarrier: true})
	s.Routes = append(s.Routes, r4(254, "0.0.0.0/1", "", "tun1", 3), r4(254, "128.0.0.0/1", "", "tun1", 3))
	return s
}

// The fix of a persistent tun no process holds deletes the device (its
// routes go with it); a device doctor cannot prove unattached keeps its
// device and loses only its routes.
func TestDeadTunFixes(t *testing.T) {
	rep := Analyze(Input{Snapshot: withDeadTun(linuxLaptop(), 0), Now: now})
	f := rep.Findings[0]
	if len(f.Fix) != 1 || f.Fix[0].Op != routes.OpDelLink || f.Fix[0].Link.Name != "tun0" || f.Commands[0] != "ip link del tun0" || !f.Fixable || f.Ours {
		t.Fatalf("persistent dead tun: want one fixable `ip link del tun0`, got %v", f.Commands)
	}
	if len(f.Evidence) != 4 || !strings.Contains(f.Evidence[0].Text, "0 file descriptors attached") || !strings.Contains(f.Evidence[0].Text, "persistent") {
		t.Errorf("evidence must show the link state and the 3 routes (not fe80::/64): %v", f.Evidence)
	}
	rep = Analyze(Input{Snapshot: withNoCarrierTun(linuxLaptop()), Now: now})
	f = rep.Findings[0]
	if f.ID != "dead-tun" || len(f.Fix) != 2 || f.Fix[0].Op != routes.OpDelRoute {
		t.Fatalf("no-carrier tun: want its 2 routes removed, got %v", f.Commands)
	}
	// ClearPath's own tunnel losing its process: reported, not "fixed"
	// behind the agent's back.
	s := withDeadTun(linuxLaptop(), 0)
	st := agent("10.8.0.0/24")
	st.Interface = "tun0"
	st.LastHandshake = now
	rep = Analyze(Input{Snapshot: s, Agent: st, Now: now})
	for _, f := range rep.Findings {
		if f.ID == "dead-tun" && (f.Fixable || f.Owner != "clearpath") {
			t.Errorf("our own dead tunnel must not be fixable by doctor: %+v", f)
		}
	}
}

// OpenVPN pushed 10.8.0.1 as resolver; after its crash resolv.conf still
// names it and its route leads into the dead tun: every lookup times out.
func TestDeadTunCarriesDNS(t *testing.T) {
	rep := Analyze(Input{Snapshot: withDeadTun(linuxLaptop(), 0), DNS: []netip.Addr{a("10.8.0.1")}, Now: now})
	f := rep.Findings[0]
	if f.ID != "dead-tun" || f.Severity != Error || !strings.Contains(f.Title, "DNS") || !strings.Contains(f.Evidence[len(f.Evidence)-1].Text, "DNS server 10.8.0.1") {
		t.Fatalf("want an error naming the resolver, got %s", dump(rep))
	}
}
