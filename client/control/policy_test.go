package control

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func errorsIsNoAccess(err error) bool { return errors.Is(err, ErrNoAccess) }

func TestPolicy(t *testing.T) {
	pol := Policy{Group: 1001, HasGroup: true, Server: func() string { return "https://gw.example/" }}
	root, member, supp, other := Peer{UID: 0}, Peer{UID: 1000, GID: 1001}, Peer{UID: 1000, GID: 1000, Groups: []uint32{27, 1001}}, Peer{UID: 1002, GID: 1002, Groups: []uint32{27}}
	up := &UpRequest{Server: "HTTPS://GW.example", Token: "t", Network: "ops", AllTraffic: true, RotateKey: true}
	for _, c := range []struct {
		p   Peer
		op  string
		req *UpRequest
		ok  bool
	}{
		{root, "up", &UpRequest{Server: "https://x", TokenFile: "/f", Interface: "i"}, true},
		{member, "status", nil, true}, {supp, "down", nil, true}, {member, "up", up, true}, {supp, "up", up, true},
		{member, "restore", nil, true}, {other, "restore", nil, false},
		{member, "dns-repoint", nil, true}, {other, "dns-repoint", nil, false},
		{other, "status", nil, false}, {other, "up", up, false},
		{member, "up", &UpRequest{Server: "https://gw.example.evil", Token: "t"}, false},
		{member, "up", &UpRequest{Server: "https://gw.example", TokenFile: "/etc/shadow"}, false},
		{member, "up", &UpRequest{Server: "https://gw.example", Interface: "eth0"}, false},
	} {
		err := pol.Allow(c.p, c.op, c.req)
		if (err == nil) != c.ok {
			t.Errorf("%v %s %+v: %v, want ok=%v", c.p, c.op, c.req, err, c.ok)
		}
	}
	if err := (Policy{}).Allow(member, "status", nil); err == nil {
		t.Error("no group configured: members of gid 0 must not pass by default")
	}
}

func TestDecodeUpRequestRefuses(t *testing.T) {
	for body, want := range map[string]string{
		`{"server":"s","token":"t","token_cache_dir":"/home/u/.config/clearpath"}`: "unknown field",
		`{"token":"t"} {"token":"u"}`:  "data after",
		`{"token":"a b"}`:              "white space",
		`{"timeout":3600000000000000}`: "timeout",
		`{"server":"x\u0000y"}`:        "NUL",
		`[]`:                           "bad up request",
		`{"token":"` + strings.Repeat("a", 70000) + `"}`: "64 KiB",
	} {
		_, err := DecodeUpRequest(strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: %v, want %q", body, err, want)
		}
	}
	r, err := DecodeUpRequest(strings.NewReader(`{"server":"https://gw","token":"t","refresh_token":"r","timeout":15000000000}`))
	if err != nil || r.RefreshToken != "r" || r.Timeout != 15*time.Second {
		t.Fatalf("good request: %+v %v", r, err)
	}
}

// FuzzDecodeUpRequest: any body either decodes into a request within
// bounds or is refused with an error; and a member's request the policy
// lets through never names a file, an interface or another server.
func FuzzDecodeUpRequest(f *testing.F) {
	for _, s := range []string{
		`{"server":"https://gw.example","token":"t","network":"eng"}`,
		`{"server":"https://gw.example","token":"t","token_file":"/etc/shadow","interface":"eth0"}`,
		`{"server":"https://GW.example/","token":"t","refresh_token":"r","all_traffic":true,"fail_closed":true}`,
		`{"token":"t","timeout":-1}`, `{"token":"t"}garbage`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	pol := Policy{Group: 7, HasGroup: true, Server: func() string { return "https://gw.example" }}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeUpRequest(bytes.NewReader(body))
		if err != nil {
			if !reflect.ValueOf(r).IsZero() {
				t.Fatalf("refused request with fields set: %+v", r)
			}
			return
		}
		if r.Timeout < 0 || r.Timeout > MaxTimeout || len(r.Token) > 64<<10 {
			t.Fatalf("out of bounds: %+v", r)
		}
		if pol.Allow(Peer{UID: 1000, GID: 7}, "up", &r) == nil {
			if r.TokenFile != "" || r.Interface != "" || !SameServer(r.Server, "https://gw.example") {
				t.Fatalf("member allowed: %+v", r)
			}
		}
	})
}
