package gwapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/server/api"
)

func TestParseEndpoint(t *testing.T) {
	ok := map[string]string{
		"198.51.100.1:51820":    "198.51.100.1:51820",
		"[2001:db8::1]:51820":   "[2001:db8::1]:51820",
		"vpn.example.com:443":   "vpn.example.com:443",
		"[::ffff:10.0.0.1]:123": "[::ffff:10.0.0.1]:123",
	}
	for in, want := range ok {
		ep, err := ParseEndpoint(in)
		if err != nil || ep.String() != want {
			t.Errorf("ParseEndpoint(%q) = %v, %v; want %s", in, ep, err, want)
		}
	}
	bad := map[string]string{
		"2001:db8::1:51820":  "IPv6 needs brackets",
		"198.51.100.1":       "not host:port",
		"198.51.100.1:0":     "not 1-65535",
		"198.51.100.1:99999": "not 1-65535",
		":51820":             "no host",
		"[fe80::1%eth0]:1":   "scoped",
		"bad host!:1":        "neither an IP address nor a host name",
	}
	for in, want := range bad {
		if _, err := ParseEndpoint(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEndpoint(%q) error %v, want %q", in, err, want)
		}
	}
}

func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"[2001:db8::1]:51820", "1.2.3.4:1", "a.b:2", "[::1", ":::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := ParseEndpoint(s)
		if err != nil {
			return
		}
		// What parses must print back to something that parses the same.
		again, err := ParseEndpoint(ep.String())
		if err != nil || again != ep {
			t.Fatalf("%q -> %v -> %v (%v)", s, ep, again, err)
		}
	})
}

func goodConfig() api.PeerConfig {
	return api.PeerConfig{PeerID: "p", Addresses: []string{"100.64.0.2/32"}, MTU: 1420,
		Gateway: api.GatewayPeer{PublicKey: "U3NU4eDpPN1ciJvtyiJr3NY47R7DGPhIj4xRvQwYgho=", Endpoint: "[2001:db8::1]:51820", AllowedIPs: []string{"10.0.0.0/8"}}}
}

// testGateway answers GET /api/v1/networks and POST /api/v1/peers the way
// the gateway does (real sealing), with answer able to spoil the reply.
type testGateway struct {
	t        *testing.T
	networks map[string]wgtypes.Key                                           // private keys
	answer   func(pc *api.PeerConfig, devicePub api.Key, netPriv wgtypes.Key) // may spoil the reply
	status   int
	errBody  api.Error
}

func (g *testGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		g.t.Errorf("token not sent: %q", r.Header.Get("Authorization"))
	}
	if g.status != 0 {
		w.WriteHeader(g.status)
		json.NewEncoder(w).Encode(g.errBody)
		return
	}
	switch r.URL.Path {
	case api.PathNetworks:
		nl := api.NetworkList{Subject: "alice-id"}
		for name, k := range g.networks {
			nl.Networks = append(nl.Networks, api.NetworkInfo{Name: name, PublicKey: k.PublicKey().String()})
		}
		slices.SortFunc(nl.Networks, func(a, b api.NetworkInfo) int { return strings.Compare(a.Name, b.Name) })
		json.NewEncoder(w).Encode(nl)
	case api.PathPeers:
		var req api.RegisterRequest
		json.NewDecoder(r.Body).Decode(&req)
		priv := g.networks[req.Network]
		pub, err := api.ParseKey(req.PublicKey)
		if err != nil {
			g.t.Fatalf("client sent key %q: %v", req.PublicKey, err)
		}
		c, _, err := api.OpenRegistration(req, pub, priv)
		if err != nil || c.Subject != "alice-id" || c.Network != req.Network || c.DeviceID != "dev-1" {
			g.t.Errorf("registration claims %+v (%v)", c, err)
		}
		pc := goodConfig()
		pc.Gateway.PublicKey = priv.PublicKey().String()
		psk := wgtypes.Key{1, 2, 3}
		sess, _ := api.SealSecret(psk, priv, pub)
		pc.Session = &sess
		if g.answer != nil {
			g.answer(&pc, pub, priv)
		}
		json.NewEncoder(w).Encode(pc)
	default:
		http.NotFound(w, r)
	}
}

func TestRegisterSealsValidatesAndMapsErrors(t *testing.T) {
	eng, _ := wgtypes.GeneratePrivateKey()
	ops, _ := wgtypes.GeneratePrivateKey()
	gw := &testGateway{t: t, networks: map[string]wgtypes.Key{"eng": eng}}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	devKey, _ := wgtypes.GeneratePrivateKey()
	dev := Device{Key: devKey, ID: "dev-1", Hostname: "laptop", OS: "linux"}
	ctx := context.Background()
	reg, err := c.Register(ctx, "tok", "", dev)
	if err != nil {
		t.Fatalf("good registration refused: %v", err)
	}
	if reg.PresharedKey != (wgtypes.Key{1, 2, 3}) {
		t.Fatalf("session key %v, want the one the gateway sealed", reg.PresharedKey)
	}
	spoil := map[string]func(pc *api.PeerConfig, devicePub api.Key, netPriv wgtypes.Key){
		"allowed_ips[0]": func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) { pc.Gateway.AllowedIPs = []string{"10.0.0.0/33"} },
		"no session key": func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) { pc.Session = nil },
		// A session key sealed by someone else (e.g. a man in the middle
		// with his own key) is refused.
		"not sealed by the network's key": func(pc *api.PeerConfig, pub api.Key, _ wgtypes.Key) {
			other, _ := wgtypes.GeneratePrivateKey()
			s, _ := api.SealSecret(api.Key{9}, other, pub)
			pc.Session = &s
		},
		"not the network's": func(pc *api.PeerConfig, _ api.Key, _ wgtypes.Key) {
			other, _ := wgtypes.GeneratePrivateKey()
			pc.Gateway.PublicKey = other.PublicKey().String()
		},
	}
	for want, f := range spoil {
		gw.answer = f
		if _, err := c.Register(ctx, "tok", "", dev); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("spoiled answer must be refused saying %q: %v", want, err)
		}
	}
	gw.answer = nil

	gw.networks["ops"] = ops
	_, err = c.Register(ctx, "tok", "", dev)
	var nr *NetworkRequiredError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "--network: eng, ops") {
		t.Fatalf("two networks and none chosen: %v", err)
	}
	if _, err := c.Register(ctx, "tok", "ops", dev); err != nil {
		t.Fatalf("--network ops: %v", err)
	}
	if _, err := c.Register(ctx, "tok", "lab", dev); err == nil || !strings.Contains(err.Error(), "eng, ops") {
		t.Fatalf("a network not offered: %v", err)
	}

	gw.status, gw.errBody = 403, api.Error{Error: api.ErrForbidden, Message: "in no group"}
	if _, err = c.Register(ctx, "tok", "", dev); !IsStatus(err, 403) || !strings.Contains(err.Error(), "in no group") {
		t.Fatalf("403 must carry the message: %v", err)
	}
	if _, err := New("vpn.example.com"); err == nil {
		t.Error("a server without scheme must be refused")
	}
}
