package gwapi

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// TestHostileGatewayAddressesAndEndpoint registers with a gateway that
// answers with tunnel addresses and endpoints no client should install:
// each answer is refused with a message naming what was wrong, so nothing
// is configured from it (the agent validates before it touches anything).
func TestHostileGatewayAddressesAndEndpoint(t *testing.T) {
	eng, _ := wgtypes.GeneratePrivateKey()
	gw := &testGateway{t: t, networks: map[string]wgtypes.Key{"eng": eng}}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	c, _ := New(srv.URL)
	devKey, _ := wgtypes.GeneratePrivateKey()
	dev := Device{Key: devKey, ID: "dev-1"}
	addrs := func(a ...string) func(*api.PeerConfig) { return func(pc *api.PeerConfig) { pc.Addresses = a } }
	endpoint := func(e string) func(*api.PeerConfig) { return func(pc *api.PeerConfig) { pc.Gateway.Endpoint = e } }
	cases := []struct {
		name  string
		spoil func(*api.PeerConfig)
		want  string
	}{
		{"v4 /1 (a prefix route beating the default)", addrs("128.0.0.2/1"), "single host (/32)"},
		{"v6 /0", addrs("100.64.0.2/32", "fd00:64::2/0"), "single host (/128)"},
		{"public v4 host", addrs("1.1.1.1/32"), "not a private address"},
		{"public v6 host", addrs("100.64.0.2/32", "2606:4700::1111/128"), "not a private address"},
		{"v4 loopback", addrs("127.0.0.2/32"), "loopback"},
		{"v6 loopback", addrs("100.64.0.2/32", "::1/128"), "loopback"},
		{"v4 unspecified", addrs("0.0.0.0/32"), "unspecified"},
		{"v6 unspecified", addrs("100.64.0.2/32", "::/128"), "unspecified"},
		{"v4 multicast", addrs("224.0.0.1/32"), "multicast"},
		{"v6 multicast", addrs("100.64.0.2/32", "ff02::1/128"), "multicast"},
		{"v4 link-local", addrs("169.254.1.1/32"), "link-local"},
		{"v6 link-local", addrs("100.64.0.2/32", "fe80::2/128"), "link-local"},
		{"v4-mapped v6", addrs("100.64.0.2/32", "::ffff:10.0.0.2/128"), "IPv4-mapped"},
		{"two v4", addrs("100.64.0.2/32", "100.64.0.3/32"), "want exactly one /32"},
		{"no v4", addrs("fd00:64::2/128"), "want exactly one /32"},
		{"two v6", addrs("100.64.0.2/32", "fd00:64::2/128", "fd00:64::3/128"), "at most one /128"},
		{"endpoint v4 loopback (the laptop's own DNS port)", endpoint("127.0.0.53:53"), "loopback"},
		{"endpoint v6 loopback", endpoint("[::1]:51820"), "loopback"},
		{"endpoint v4 multicast", endpoint("239.1.1.1:51820"), "multicast"},
		{"endpoint v6 multicast", endpoint("[ff02::1]:51820"), "multicast"},
		{"endpoint v4 unspecified", endpoint("0.0.0.0:51820"), "unspecified"},
		{"endpoint v6 unspecified", endpoint("[::]:51820"), "unspecified"},
		{"endpoint v4 broadcast", endpoint("255.255.255.255:51820"), "not a unicast"},
		{"endpoint v6 zone-less link-local", endpoint("[fe80::1]:51820"), "link-local"},
		{"endpoint v4 link-local", endpoint("169.254.169.254:51820"), "link-local"},
		{"endpoint v4-mapped loopback", endpoint("[::ffff:127.0.0.1]:51820"), "loopback"},
	}
	for _, tc := range cases {
		gw.answer = func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) { tc.spoil(pc) }
		_, err := c.Register(context.Background(), "tok", "", dev)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad peer config") {
			t.Errorf("%s: want a refusal saying %q, got %v", tc.name, tc.want, err)
		}
	}
	// What the protocol defines passes, in both families.
	gw.answer = func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) {
		pc.Addresses = []string{"100.64.0.2/32", "fd00:64::2/128"}
		pc.Gateway.Endpoint = "198.51.100.1:51820"
	}
	if _, err := c.Register(context.Background(), "tok", "", dev); err != nil {
		t.Fatalf("a good config was refused: %v", err)
	}
	for _, ok := range []string{"10.0.0.1", "2001:db8::1", "192.168.1.1", "fd00::1"} {
		if err := CheckEndpointAddr(netip.MustParseAddr(ok)); err != nil {
			t.Errorf("endpoint %s refused: %v", ok, err)
		}
	}
}

// TestHostileGatewayTextIsCleaned: names, user names and error messages
// from the gateway reach the terminal without escape sequences, control
// characters or unbounded length.
func TestHostileGatewayTextIsCleaned(t *testing.T) {
	evil := "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\x1b[2J\r\nfake prompt$ \u202eexe.txt"
	eng, _ := wgtypes.GeneratePrivateKey()
	gw := &testGateway{t: t, networks: map[string]wgtypes.Key{"eng": eng}}
	gw.answer = func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) {
		pc.Network, pc.User, pc.Email, pc.PeerID = "eng"+evil, evil, evil+strings.Repeat("x", 100_000), evil
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	c, _ := New(srv.URL)
	devKey, _ := wgtypes.GeneratePrivateKey()
	reg, err := c.Register(context.Background(), "tok", "", Device{Key: devKey, ID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	pc := reg.Config
	for name, s := range map[string]string{"network": pc.Network, "user": pc.User, "email": pc.Email, "peer": pc.PeerID} {
		if strings.ContainsAny(s, "\x1b\x07\r\n\u202e") {
			t.Errorf("%s reaches the terminal with control characters: %q", name, s)
		}
		if n := len([]rune(s)); n > MaxText+1 {
			t.Errorf("%s is %d runes long, want at most %d", name, n, MaxText+1)
		}
	}
	if !strings.Contains(pc.User, "click") || !strings.Contains(pc.User, "fake prompt") {
		t.Errorf("the printable text must stay: %q", pc.User)
	}
	gw.status, gw.errBody = 403, api.Error{Error: "forbidden\x1b[31m", Message: evil, Networks: []string{"a\x1b[2Jb"}}
	_, err = c.Register(context.Background(), "tok", "", Device{Key: devKey, ID: "dev-1"})
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07\r\n\u202e") {
		t.Errorf("an error message from the gateway reaches the terminal raw: %q", err)
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"eng":               "eng",
		"a\x1b[2Jb":         "a[2Jb",
		"tab\there":         "tabhere",
		"bad\xffutf8":       "bad\uFFFDutf8",
		"rtl\u202eoverride": "rtloverride",
		"ünïcode ok":        "ünïcode ok",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Clean(strings.Repeat("é", 1000)); len([]rune(got)) != MaxText+1 || !strings.HasSuffix(got, "…") {
		t.Errorf("long text must be cut to %d runes and marked: %d", MaxText, len([]rune(got)))
	}
}
