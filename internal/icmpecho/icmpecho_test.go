package icmpecho

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Loopback answers (IPv4 and IPv6), and an ended context stops the
// requests with its error. Only loopback is pinged.
func TestPingLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: raw ICMP socket")
	}
	for _, a := range []string{"127.0.0.1", "::1"} {
		lo := netip.MustParseAddr(a)
		rtt, err := Ping(context.Background(), lo, lo, Options{Tries: 3, Wait: time.Second, Payload: "clearpath-test"})
		if err != nil || rtt <= 0 || rtt > time.Second {
			t.Errorf("ping %s: %v %v", a, rtt, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lo := netip.MustParseAddr("127.0.0.1")
	if _, err := Ping(ctx, lo, lo, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("with the context ended: %v, want context.Canceled", err)
	}
}

func TestWaitDoublesUpToMaxWait(t *testing.T) {
	o := Options{Wait: 2 * time.Millisecond, MaxWait: 300 * time.Millisecond}
	want := []time.Duration{2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
	for i, w := range want {
		if got := o.wait(i + 1); got != w*time.Millisecond {
			t.Errorf("wait(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := o.wait(100000); got != o.MaxWait {
		t.Errorf("wait(100000) = %v, want %v", got, o.MaxWait)
	}
	if got := (Options{Wait: time.Second}).wait(5); got != time.Second {
		t.Errorf("without MaxWait: wait(5) = %v, want the fixed 1s", got)
	}
}
