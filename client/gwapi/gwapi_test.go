package gwapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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

func TestRegisterValidatesAndMapsErrors(t *testing.T) {
	var answer func(w http.ResponseWriter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("token not sent: %q", r.Header.Get("Authorization"))
		}
		answer(w)
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	answer = func(w http.ResponseWriter) { json.NewEncoder(w).Encode(goodConfig()) }
	if _, err := c.Register(context.Background(), "tok", api.RegisterRequest{}); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	bad := goodConfig()
	bad.Gateway.AllowedIPs = []string{"10.0.0.0/33"}
	answer = func(w http.ResponseWriter) { json.NewEncoder(w).Encode(bad) }
	if _, err := c.Register(context.Background(), "tok", api.RegisterRequest{}); err == nil || !strings.Contains(err.Error(), "allowed_ips[0]") {
		t.Fatalf("bad config must be refused naming the field: %v", err)
	}
	answer = func(w http.ResponseWriter) {
		w.WriteHeader(409)
		json.NewEncoder(w).Encode(api.Error{Error: api.ErrNetworkRequired, Message: "choose one", Networks: []string{"eng", "ops"}})
	}
	_, err = c.Register(context.Background(), "tok", api.RegisterRequest{})
	if !IsStatus(err, 409) || !strings.Contains(err.Error(), "eng, ops") {
		t.Fatalf("409 must carry the networks: %v", err)
	}
	if _, err := New("vpn.example.com"); err == nil {
		t.Error("a server without scheme must be refused")
	}
}
