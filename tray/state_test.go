package tray

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/units"
)

func TestDerive(t *testing.T) {
	up := &control.Status{State: control.StateUp, Server: "https://gw", Network: "eng"}
	down := &control.Status{State: control.StateDown}
	failed := &control.Status{State: control.StateDown, Error: "create tunnel: operation not permitted"}
	for _, tc := range []struct {
		name   string
		in     Inputs
		want   State
		reason string
	}{
		{"no agent, token file", Inputs{}, Disconnected, ""},
		{"agent idle", Inputs{Status: down}, Disconnected, ""},
		{"agent up", Inputs{Status: up}, Connected, ""},
		{"agent connecting (started by the CLI)", Inputs{Status: &control.Status{State: control.StateConnecting}}, Connecting, ""},
		{"our connect running", Inputs{Busy: ActConnect}, Connecting, ""},
		{"our disconnect running", Inputs{Status: up, Busy: ActDisconnect}, Connecting, ""},
		{"agent kept its last failure", Inputs{Status: failed}, Error, "create tunnel: operation not permitted"},
		{"our last action failed", Inputs{Status: down, LastErr: errors.New("start agent: exec: no such file\nmore")}, Error, "start agent: exec: no such file"},
		{"socket not ours", Inputs{AgentErr: errors.New("the agent's socket is not open to this user")}, Error, "the agent's socket is not open to this user"},
		{"refused token", Inputs{Status: down, LastErr: errors.New("gateway refused (401 invalid_token): expired")}, NeedsLogin, "gateway refused (401 invalid_token): expired"},
		{"login cache empty", Inputs{Login: LoginState{Supported: true}}, NeedsLogin, "not logged in"},
		{"logged in, idle", Inputs{Login: LoginState{Supported: true, LoggedIn: true}}, Disconnected, ""},
		{"login running", Inputs{Busy: ActLogin, Login: LoginState{Supported: true}}, NeedsLogin, "logging in: finish in your browser"},
		{"up wins over a stale error", Inputs{Status: up, LastErr: errors.New("old")}, Connected, ""},
		{"up even if logged out meanwhile", Inputs{Status: up, Login: LoginState{Supported: true}}, Connected, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Derive(tc.in)
			if v.State != tc.want || v.Reason != tc.reason {
				t.Fatalf("got %s %q, want %s %q", v.State, v.Reason, tc.want, tc.reason)
			}
		})
	}
}

func TestDeriveServerComesFromTheAgentWhenConnected(t *testing.T) {
	v := Derive(Inputs{Server: "https://configured", Status: &control.Status{State: control.StateUp, Server: "https://cli-chose", Network: "ops"}})
	if v.Server != "https://cli-chose" || v.Network != "ops" {
		t.Fatalf("tray and CLI must agree on what is connected: %q %q", v.Server, v.Network)
	}
}

func TestMenuPerState(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	conn := View{State: Connected, Server: "https://vpn.example.com", Network: "eng", Agent: true,
		Status: control.Status{State: control.StateUp, Addresses: []string{"100.64.0.2/32"}, ExpiresAt: &exp},
		Login:  LoginState{Supported: true, LoggedIn: true, Who: "alice@example.com"}}
	labels := func(items []Item) string {
		var out []string
		for _, it := range items {
			if it.Separator {
				out = append(out, "--")
				continue
			}
			l := it.Label
			if it.Disabled {
				l = "(" + l + ")"
			}
			out = append(out, l)
		}
		return strings.Join(out, " | ")
	}
	for _, tc := range []struct {
		name string
		v    View
		want string
	}{
		{"connected", conn,
			"(ClearPath: Connected) | (Address: 100.64.0.2) | (Server: vpn.example.com (eng)) | -- | Disconnect | Log out alice@example.com | Connection options | -- | Open status window | Run doctor | (Restore routes) | -- | Quit"},
		{"disconnected, token file", View{State: Disconnected, Server: "https://vpn.example.com"},
			"(ClearPath: Disconnected) | (Server: vpn.example.com) | -- | Connect | Connection options | -- | Open status window | Run doctor | Restore routes | -- | Quit"},
		{"needs login", View{State: NeedsLogin, Reason: "not logged in", Server: "https://vpn.example.com", Login: LoginState{Supported: true}},
			"(ClearPath: Not logged in) | (Server: vpn.example.com) | (not logged in) | -- | Connect | Log in… | Connection options | -- | Open status window | Run doctor | Restore routes | -- | Quit"},
		{"connecting", View{State: Connecting, Busy: ActConnect, Server: "https://vpn.example.com"},
			"(ClearPath: Connecting…) | (Server: vpn.example.com) | -- | (Connecting…) | Connection options | -- | Open status window | Run doctor | (Restore routes) | -- | Quit"},
		{"no server configured", View{State: Disconnected},
			"(ClearPath: Disconnected) | -- | (Connect) | Connection options | -- | Open status window | Run doctor | Restore routes | -- | Quit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := labels(Menu(tc.v)); got != tc.want {
				t.Fatalf("menu\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestStatusRowsConnected(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	exp := now.Add(11*time.Hour + 30*time.Minute)
	since := now.Add(-90 * time.Second)
	age := 12.4
	v := View{State: Connected, Now: now, Server: "https://gw", Network: "eng", RxRate: 100, TxRate: 3 * 1024 * 1024,
		Status: control.Status{State: control.StateUp, Email: "a@example.com", Addresses: []string{"100.64.0.2/32", "fd00:64::2/128"},
			Endpoint: "[2001:db8::1]:51820", Interface: "cp0", HandshakeAgeSec: &age, RxBytes: 2048, TxBytes: 5 << 30,
			ExpiresAt: &exp, ConnectedAt: &since}}
	got := map[string]string{}
	for _, r := range StatusRows(v) {
		got[r.Label] = r.Value
	}
	want := map[string]string{
		"State": "Connected", "User": "a@example.com", "Server": "https://gw", "Network": "eng",
		"Addresses": "100.64.0.2/32, fd00:64::2/128 on cp0", "Endpoint": "[2001:db8::1]:51820",
		"Handshake": "12s ago", "Receiving": "100 B/s (2.0 KiB total)", "Sending": "3.0 MiB/s (5.0 GiB total)",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
	if !strings.HasPrefix(got["Peer expires"], "in 11h30m (") {
		t.Errorf("peer expires %q", got["Peer expires"])
	}
	if !strings.Contains(got["Connected"], "(for 1m30s)") {
		t.Errorf("connected %q", got["Connected"])
	}
}

func TestFormat(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ got, want string }{
		{units.Bytes(0), "0 B"}, {units.Bytes(1023), "1023 B"}, {units.Bytes(1536), "1.5 KiB"}, {units.Bytes(1 << 60), "1.0 EiB"},
		{Rate(0), "0 B/s"}, {Rate(-5), "0 B/s"}, {Rate(2048), "2.0 KiB/s"},
		{Age(300 * time.Millisecond), "just now"}, {Age(75 * time.Second), "1m15s ago"},
		{ServerHost("https://vpn.example.com:8443/x"), "vpn.example.com:8443"}, {ServerHost("not a url"), "not a url"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if got := Until(now.Add(-5*time.Minute), now); !strings.HasPrefix(got, "expired 5m0s ago") {
		t.Errorf("past deadline: %q", got)
	}
}

func TestOverlapLines(t *testing.T) {
	v := View{Status: control.Status{Overlaps: []control.Overlap{
		{Pushed: "10.0.0.0/8", Local: "10.1.2.0/24 dev eth0", Winner: "lan"},
		{Pushed: "10.10.0.0/16", Local: "10.0.0.0/8 dev eth1", Winner: "tunnel"},
	}}}
	got := strings.Join(OverlapLines(v), "\n")
	want := "10.0.0.0/8 overlaps 10.1.2.0/24 dev eth0: the LAN wins\n10.10.0.0/16 overlaps 10.0.0.0/8 dev eth1: the tunnel wins"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
