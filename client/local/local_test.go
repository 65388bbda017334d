package local

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// The state dir: CLEARPATH_STATE_DIR, else the old VPN_STATE_DIR with one
// warning, else the default; --state-dir defaults to it unless the caller
// already chose one.
func TestStateDirFromTheEnvironment(t *testing.T) {
	var warn bytes.Buffer
	old := envvar.Warnings
	envvar.Warnings = &warn
	t.Cleanup(func() { envvar.Warnings = old })

	t.Setenv("CLEARPATH_STATE_DIR", "")
	t.Setenv("VPN_STATE_DIR", "")
	if d := StateDir(); d != control.DefaultStateDir {
		t.Errorf("neither set (empty): %q, want %q", d, control.DefaultStateDir)
	}
	t.Setenv("CLEARPATH_STATE_DIR", "/srv/cp")
	t.Setenv("VPN_STATE_DIR", "/srv/old")
	if d := StateDir(); d != "/srv/cp" || warn.Len() != 0 {
		t.Errorf("both set: %q (warning %q), want the new name's and no warning", d, warn.String())
	}
	t.Setenv("CLEARPATH_STATE_DIR", "")
	if d := StateDir(); d != control.DefaultStateDir {
		t.Errorf("new name empty: %q", d)
	}

	var dir string
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddStateDirFlag(fs, &dir)
	if dir != control.DefaultStateDir || !strings.Contains(fs.Lookup("state-dir").Usage, "CLEARPATH_STATE_DIR") {
		t.Errorf("--state-dir default %q, usage %q", dir, fs.Lookup("state-dir").Usage)
	}
	chosen := "/tmp/chosen"
	AddStateDirFlag(pflag.NewFlagSet("t", pflag.ContinueOnError), &chosen)
	if chosen != "/tmp/chosen" {
		t.Errorf("--state-dir overwrote the caller's choice: %q", chosen)
	}
}

// Poll asks until done, with waits that grow (5 ms doubling to Max), for
// no longer than the budget, and stops when the context ends.
func TestBackoffPoll(t *testing.T) {
	b := Backoff{First: time.Millisecond, Max: 8 * time.Millisecond, Budget: time.Hour}
	n := 0
	if !b.Poll(context.Background(), func() bool { n++; return n == 6 }) || n != 6 {
		t.Fatalf("done on the 6th try: tries %d", n)
	}
	// Budget: 1+2+4+8+8+... ms; 100 ms holds some 15 tries, not hundreds.
	b.Budget = 100 * time.Millisecond
	n = 0
	start := time.Now()
	if b.Poll(context.Background(), func() bool { n++; return false }) {
		t.Fatal("never done, yet Poll said done")
	}
	if took := time.Since(start); took < b.Budget || n < 3 || n > 60 {
		t.Errorf("budget 100ms: took %s over %d tries", took, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	if (Backoff{First: time.Hour, Max: time.Hour, Budget: 10 * time.Hour}).Poll(ctx, func() bool { n++; cancel(); return false }) || n != 1 {
		t.Fatalf("a cancelled context must end the wait: tries %d", n)
	}
}

type upAgent struct{}

func (upAgent) Status() control.Status { return control.Status{State: control.StateUp} }
func (upAgent) Up(context.Context, control.UpRequest) (control.Status, error) {
	return control.Status{}, errors.New("not here")
}
func (upAgent) Down(context.Context) (control.Status, error) { return control.Status{}, nil }

// dropping listens on the socket of dir and drops the first drops
// connections before answering (an agent on its way out); then it
// answers as an agent that is up, or, when thenGone, closes the socket.
func dropping(t *testing.T, dir string, drops int32, thenGone bool) *atomic.Int32 {
	t.Helper()
	ln, err := net.Listen("unix", control.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var seen atomic.Int32
	go func() {
		for seen.Load() < drops {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen.Add(1)
			c.Close()
		}
		if thenGone {
			ln.Close() // the socket file goes with it
			return
		}
		http.Serve(ln, control.NewServer(upAgent{}, nil, control.Policy{Open: true}))
	}()
	return &seen
}

// Status rides out an agent that drops connections: it gets the answer of
// one that recovers, and ErrNoAgent for one that goes; WaitGone tells
// the two apart.
func TestStatusRidesOutAnAgentGoingAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	dir := t.TempDir()
	seen := dropping(t, dir, 3, false)
	c := New(dir)
	if st, err := c.Status(ctx); err != nil || st.State != control.StateUp || seen.Load() != 3 {
		t.Fatalf("agent answering after 3 drops: %+v, %v (dropped %d)", st, err, seen.Load())
	}
	if c.WaitGone(ctx) {
		t.Fatal("WaitGone: gone, yet the agent answers")
	}

	dir = t.TempDir()
	dropping(t, dir, 3, true)
	c = New(dir)
	if _, err := c.Status(ctx); !errors.Is(err, control.ErrNoAgent) {
		t.Fatalf("agent gone after 3 drops: %v, want ErrNoAgent", err)
	}
	if !c.WaitGone(ctx) {
		t.Fatal("WaitGone: no agent, yet not gone")
	}
}

// The Up flags parse into the request both the CLI and the tray send; a
// bad --mtu is refused naming the flag and the range.
func TestUpFlags(t *testing.T) {
	var o UpOptions
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	AddUpFlags(fs, &o)
	err := fs.Parse([]string{"--server", "https://gw.example", "--network", "eng", "--interface", "cp3", "--timeout", "7s",
		"--all-traffic", "--block-lan", "--fail-closed", "--route-lan", "--max-prefixes", "50", "--mtu", "1380", "--token-file", "/t"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := o.Request()
	want := control.UpRequest{Server: "https://gw.example", Network: "eng", Interface: "cp3", Timeout: 7 * time.Second,
		AllTraffic: true, BlockLAN: true, FailClosed: true, RouteLAN: true, MaxPrefixes: 50, MTU: 1380}
	if err != nil || req.Server != want.Server || req.Network != want.Network || req.Interface != want.Interface || req.Timeout != want.Timeout ||
		req.AllTraffic != want.AllTraffic || req.BlockLAN != want.BlockLAN || req.FailClosed != want.FailClosed || req.RouteLAN != want.RouteLAN ||
		req.MaxPrefixes != want.MaxPrefixes || req.MTU != want.MTU || req.AutoMTU || req.TokenFile != "" || req.Token != "" {
		t.Fatalf("request %+v, %v; want %+v (no token, no token file)", req, err, want)
	}
	if o.TokenFile != "/t" {
		t.Errorf("--token-file: %q", o.TokenFile)
	}
	if o.Timeout = 0; fs.Lookup("timeout").DefValue != DefaultUpTimeout.String() {
		t.Errorf("--timeout default %s", fs.Lookup("timeout").DefValue)
	}
	o.MTU = "auto"
	if req, err := o.Request(); err != nil || !req.AutoMTU || req.MTU != 0 {
		t.Errorf("--mtu auto: %+v %v", req, err)
	}
	for _, bad := range []string{"575", "9001", "big", "-1"} {
		o.MTU = bad
		if _, err := o.Request(); err == nil || !strings.Contains(err.Error(), `--mtu "`+bad+`": want auto or a number of bytes from 576 to 9000`) {
			t.Errorf("--mtu %s: %v", bad, err)
		}
	}
}
