package icmpecho_test

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/icmpecho"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/netnstest"
)

// A request that cannot be sent (no route to dst yet) is an error, unless
// RetryUnsent: then Ping keeps trying, and is answered once dst exists,
// as a tunnel's first reply is awaited while the tunnel comes up. In a
// namespace of the test's own.
func TestRetryUnsent(t *testing.T) {
	ns := netnstest.New(t)
	ns.IPIn("route", "del", "default")
	node := &lab.Node{Name: "test", NS: ns.Name}
	any4, dst := netip.IPv4Unspecified(), netip.MustParseAddr("10.9.9.9")
	ping := func(ctx context.Context, o icmpecho.Options) error {
		return node.Do(func() error { _, err := icmpecho.Ping(ctx, any4, dst, o); return err })
	}

	err := ping(context.Background(), icmpecho.Options{Tries: 3, Wait: time.Second})
	if err == nil || !strings.Contains(err.Error(), "send echo request") {
		t.Fatalf("without RetryUnsent, no route: %v, want a send error", err)
	}

	go func() {
		time.Sleep(50 * time.Millisecond)
		exec.Command("ip", "-n", ns.Name, "addr", "add", "10.9.9.9/32", "dev", "lo").Run()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ping(ctx, icmpecho.Options{Wait: 2 * time.Millisecond, RetryUnsent: true}); err != nil {
		t.Fatalf("with RetryUnsent, once 10.9.9.9 exists: %v, want a reply", err)
	}
}
