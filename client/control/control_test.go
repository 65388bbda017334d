package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
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
