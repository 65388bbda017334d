package routes

import (
	"net/netip"
	"strings"
	"testing"
)

func lanSnap() *Snapshot {
	pp := netip.MustParsePrefix
	pa := netip.MustParseAddr
	return &Snapshot{OS: "linux",
		Routes: []Route{
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pp("0.0.0.0/0"), Gateway: pa("10.1.2.1"), Device: "eth0", Protocol: 4},
			{Family: FamilyV4, Table: 254, Type: TypeUnicast, Dst: pp("10.1.2.0/24"), Device: "eth0", Protocol: 2, Scope: 253, Src: pa("10.1.2.10")},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("::/0"), Gateway: pa("fd01:2::1"), Device: "eth0", Protocol: 4},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("fd01:2::/64"), Device: "eth0", Protocol: 2},
			{Family: FamilyV6, Table: 254, Type: TypeUnicast, Dst: pp("fe80::/64"), Device: "eth0", Protocol: 2},
		},
		Addresses: []Address{{Device: "eth0", Prefix: pp("10.1.2.10/24")}, {Device: "eth0", Prefix: pp("fd01:2::10/64")}, {Device: "lo", Prefix: pp("127.0.0.1/8")}},
	}
}

func TestCheckTunnelAddresses(t *testing.T) {
	pp := netip.MustParsePrefix
	snap := lanSnap()
	if err := CheckTunnelAddresses(snap, []netip.Prefix{pp("100.64.0.2/32"), pp("fd00:64::2/128")}, ""); err != nil {
		t.Fatalf("good addresses refused: %v", err)
	}
	for addr, want := range map[string]string{
		"10.1.2.10/32":   "already an address of eth0",
		"10.1.2.77/32":   "lies in 10.1.2.0/24",
		"fd01:2::10/128": "already an address of eth0",
		"fd01:2::99/128": "lies in fd01:2::/64",
	} {
		err := CheckTunnelAddresses(snap, []netip.Prefix{pp(addr)}, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want %q, got %v", addr, want, err)
		}
	}
}
