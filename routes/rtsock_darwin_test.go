package routes

// A model of one PF_ROUTE socket on top of the XNU model (bsdxnu_test.go),
// for issue 23 point 6: a write is route_output (its errno is the
// write's, rtsock.c), every change is broadcast to every listener, ours
// included (SO_USELOOPBACK), into a receive queue of RAWRCVQ (8 KiB)
// bytes that drops what does not fit (raw_input: sbappendaddr fails, the
// message is gone). Time is the model's: each read takes a millisecond.

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/route"
)

type xnuSocket struct {
	k       *xnu
	queue   [][]byte
	used    int
	rcvbuf  int
	clock   time.Time
	noise   func() []byte // another process's change arriving before each read
	dropped int
	reads   int
}

var errForever = errors.New("model: still reading after 100000 messages")

func newXNUSocket(k *xnu) *xnuSocket {
	return &xnuSocket{k: k, rcvbuf: 8192, clock: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
}

func (s *xnuSocket) now() time.Time { return s.clock }

func (s *xnuSocket) deliver(b []byte) {
	if s.used+len(b) > s.rcvbuf {
		s.dropped++
		return
	}
	s.queue = append(s.queue, b)
	s.used += len(b)
}

func (s *xnuSocket) Write(b []byte) error {
	msgs, err := parseRIB(route.RIBTypeRoute, b)
	if err != nil || len(msgs) != 1 {
		return syscall.EINVAL
	}
	rm, ok := msgs[0].(*route.RouteMessage)
	if !ok {
		return syscall.EINVAL
	}
	reply, err := s.k.requestAs(int(rm.ID), fromRouteMessage(rm))
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	} else if err != nil {
		return err
	}
	w, err := toRouteMessage(reply, int(rm.ID)).Marshal()
	if err != nil {
		return err
	}
	s.deliver(w)
	return nil
}

func (s *xnuSocket) Read(b []byte, deadline time.Time) (int, error) {
	if s.reads++; s.reads > 100000 {
		return 0, errForever
	}
	if s.noise != nil {
		s.deliver(s.noise())
	}
	if len(s.queue) == 0 || !s.clock.Before(deadline) {
		s.clock = maxTime(s.clock, deadline)
		return 0, syscall.EAGAIN
	}
	s.clock = s.clock.Add(time.Millisecond)
	m := s.queue[0]
	s.queue = s.queue[1:]
	s.used -= len(m)
	return copy(b, m), nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// storm is configd and another VPN busy on the route socket: a route
// change of another process per read, forever.
func storm(t testing.TB) func() []byte {
	i := 0
	return func() []byte {
		i++
		b, err := toRouteMessage(bsdRouteMsg{Type: rtmAdd, Seq: i, Flags: bsdFlagBits("UGS"), Dst: in4(fmt.Sprintf("10.%d.%d.0", i>>8&0xff, i&0xff)),
			Gateway: in4("192.168.1.1"), Netmask: bsdMask(24, false)}, 777).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// Point 6: the reply to an add can be dropped from a full receive queue,
// and a storm of others' changes keeps the socket busy. The add that the
// kernel made must be reported as made, within the deadline; a lookup
// whose reply never comes fails within the deadline instead of blocking.
func TestDarwinRouteSocketRepliesCanBeDropped(t *testing.T) {
	k := macWithTunnel()
	s := newXNUSocket(k)
	s.noise = storm(t)
	for s.used < s.rcvbuf-100 { // the queue is full when we write
		s.deliver(s.noise())
	}
	start := s.now()
	r := ours(mkRoute("10.99.0.0/16", "", "utun5"))
	m, err := bsdChangeMsg(Change{Op: OpAddRoute, Route: &r}, int(bsdSeq.Add(1)), macDevs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = exchange(s, m, xnuSelf, s.now)
	if s.dropped == 0 {
		t.Fatal("model: the reply was not dropped")
	}
	if err != nil {
		t.Errorf("an add the kernel made is reported as failed: %v", err)
	}
	if _, _, e := newBSDSystem(k).find(r); e != nil {
		t.Fatal(e)
	}
	if took := s.now().Sub(start); took > requestTimeout {
		t.Errorf("the add took %s of model time, over the %s deadline", took, requestTimeout)
	}

	// A lookup in the same storm: an answer or an error, in time.
	start = s.now()
	q, _ := bsdLookupMsg(Query{Dst: endpoint}, int(bsdSeq.Add(1)))
	_, err = exchange(s, q, xnuSelf, s.now)
	if errors.Is(err, errForever) || s.now().Sub(start) > requestTimeout+time.Second {
		t.Errorf("a lookup in a storm: %v after %s of model time", err, s.now().Sub(start))
	}
	// Without the storm the lookup is answered.
	s.noise, s.queue, s.used, s.reads = nil, nil, 0, 0
	got, err := exchange(s, q, xnuSelf, s.now)
	if err != nil || got.Type != rtmGet {
		t.Errorf("a quiet lookup: %+v %v", got, err)
	}
}
