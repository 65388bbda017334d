package tray

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
)

func TestNetworksFromError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"register with http://gw: gateway refused (409 network_required): pick one [networks: eng, ops]", []string{"eng", "ops"}},
		{"gateway refused (409 network_required): x [networks: solo]", []string{"solo"}},
		{"gateway refused (403 forbidden): not in any group", nil},
		{"[networks: unterminated", nil},
		{"[networks: , ,]", nil},
	} {
		if got := NetworksFromError(errors.New(tc.msg)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.msg, got, tc.want)
		}
	}
	if NetworksFromError(nil) != nil {
		t.Error("nil error gave networks")
	}
}

type netsErr struct{ nets []string }

func (e netsErr) Error() string      { return "typed" }
func (e netsErr) Networks() []string { return e.nets }

func TestNetworksFromTypedError(t *testing.T) {
	if got := NetworksFromError(netsErr{[]string{"a"}}); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("got %q", got)
	}
}

// FuzzNetworksFromError: any message gives names that are non-empty,
// trimmed and free of the list's own punctuation.
func FuzzNetworksFromError(f *testing.F) {
	f.Add("gateway refused (409 network_required): x [networks: eng, ops]")
	f.Add("[networks: ]")
	f.Add("[networks: a,,b] [networks: c]")
	f.Fuzz(func(t *testing.T, msg string) {
		for _, n := range NetworksFromError(errors.New(msg)) {
			if n == "" || n != strings.TrimSpace(n) || strings.ContainsAny(n, ",]") {
				t.Fatalf("bad network name %q from %q", n, msg)
			}
		}
	})
}

// An agent that is exiting accepts a connection and drops it; the tray
// must then see "no agent" (disconnected), not an error, and an agent
// that recovers is simply asked again.
func TestStatusRidesOutAnAgentGoingAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name     string
		thenLive bool
	}{{"agent exits", false}, {"agent answers after all", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ln, err := net.Listen("unix", control.SocketPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for i := 0; i < 3; i++ {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close() // reset before answering
				}
				if !tc.thenLive {
					ln.Close() // the socket file goes with it
					return
				}
				http.Serve(ln, control.NewServer(statusOnly{}, nil, control.Policy{Open: true}))
			}()
			st, err := NewAgent(dir).Status(ctx)
			switch {
			case tc.thenLive && (err != nil || st.State != control.StateUp):
				t.Fatalf("status %+v, %v; want the agent's answer", st, err)
			case !tc.thenLive && !errors.Is(err, control.ErrNoAgent):
				t.Fatalf("status error %v, want ErrNoAgent", err)
			}
		})
	}
}

type statusOnly struct{}

func (statusOnly) Status() control.Status { return control.Status{State: control.StateUp} }
func (statusOnly) Up(context.Context, control.UpRequest) (control.Status, error) {
	return control.Status{}, errors.New("not here")
}
func (statusOnly) Down(context.Context) (control.Status, error) { return control.Status{}, nil }
