package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
)

type repointer struct {
	fake
	stub  bool
	calls atomic.Int32
}

func (r *repointer) RepointDNS(context.Context) (RepointReport, error) {
	r.calls.Add(1)
	if !r.stub {
		return RepointReport{}, ErrNoStub
	}
	return RepointReport{Changed: true, Upstream: []string{"192.0.2.53"}}, nil
}

func serveAt(t *testing.T, h Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), SocketName)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go http.Serve(ln, NewServer(h, nil, Policy{Open: true}))
	return NewClient(sock)
}

// POST /v1/dns/repoint reaches the agent's RepointDNS; its answers (done,
// no stub) come back as the client's result and errors; a handler without
// it (an older agent) gets ErrRepointUnsupported, not a bare 404.
func TestRepointDNSOverSocket(t *testing.T) {
	ctx := context.Background()
	h := &repointer{stub: true}
	c := serveAt(t, h)
	rep, err := c.RepointDNS(ctx)
	if err != nil || !rep.Changed || !reflect.DeepEqual(rep.Upstream, []string{"192.0.2.53"}) || h.calls.Load() != 1 {
		t.Fatalf("repoint: %+v %v (calls %d)", rep, err, h.calls.Load())
	}
	h.stub = false
	if _, err := c.RepointDNS(ctx); !errors.Is(err, ErrNoStub) {
		t.Fatalf("no stub: %v, want ErrNoStub", err)
	}
	if _, err := serveAt(t, &fake{}).RepointDNS(ctx); !errors.Is(err, ErrRepointUnsupported) {
		t.Fatalf("older agent: %v, want ErrRepointUnsupported", err)
	}
}
