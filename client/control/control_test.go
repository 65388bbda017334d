package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

type fake struct{ up UpRequest }

func (f *fake) Status() Status { return Status{State: StateDown} }
func (f *fake) Up(_ context.Context, r UpRequest) (Status, error) {
	f.up = r
	if r.Token == "bad" {
		return Status{}, errors.New("register: gateway refused (401)")
	}
	return Status{State: StateUp, Interface: "cp0"}, nil
}
func (f *fake) Down(context.Context) (Status, error) { return Status{State: StateDown}, nil }

func TestRoundTripOverUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, SocketName)
	c := NewClient(sock)
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("no agent: %v", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := &fake{}
	downs := make(chan struct{}, 1)
	go http.Serve(ln, NewServer(h, func() { downs <- struct{}{} }, Policy{Open: true}))
	defer ln.Close()
	st, err := c.Up(context.Background(), UpRequest{Server: "https://gw", Token: "t", AllTraffic: true})
	if err != nil || st.State != StateUp || h.up.Server != "https://gw" || !h.up.AllTraffic {
		t.Fatalf("up: %+v %v (agent saw %+v)", st, err, h.up)
	}
	if _, err := c.Up(context.Background(), UpRequest{Token: "bad"}); err == nil || err.Error() != "register: gateway refused (401)" {
		t.Fatalf("the agent's reason must reach the CLI verbatim: %v", err)
	}
	if st, err := c.Down(context.Background()); err != nil || st.State != StateDown {
		t.Fatalf("down: %v %v", st, err)
	}
	<-downs
}

// The client sorts failures into the classes callers branch on: nothing
// listening (ErrNoAgent), a connection dropped before an answer
// (ErrTransient: an agent on its way out), the caller's own deadline (not
// transient: asking again would not help), and the agent's answer.
func TestClientClassifiesFailures(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, SocketName)
	c := NewClient(sock)
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNoAgent) || errors.Is(err, ErrTransient) || errors.Is(err, ErrNoAccess) {
		t.Fatalf("no socket: %v", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hang := make(chan struct{})
	defer close(hang)
	go func() {
		for i := 0; ; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				conn.Close() // dropped before an answer
				continue
			}
			go func() { <-hang; conn.Close() }() // never answers
		}
	}()
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrTransient) || errors.Is(err, ErrNoAgent) {
		t.Fatalf("dropped connection: %v, want ErrTransient", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Status(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTransient) {
		t.Fatalf("caller's deadline: %v, want DeadlineExceeded and not ErrTransient", err)
	}
}
