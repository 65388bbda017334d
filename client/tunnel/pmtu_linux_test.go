package tunnel

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
)

// The lab's public hop narrowed to 1280 bytes, with the router dropping
// the ICMP errors that would tell (a PMTU black hole): from the laptop,
// PathMTU finds 1280 to the gateway's public address over IPv4 and IPv6,
// and the full 1500 to the router before the narrow hop.
func TestPathMTUThroughANarrowHop(t *testing.T) {
	lab.SkipUnlessRoot(t)
	r := lab.ReferenceT(t, lab.Options{NarrowHop: 1280, PMTUBlackHole: true})
	for _, c := range []struct {
		src, dst string
		want     int
	}{
		{lab.LaptopIP4, lab.GWPublicIP4, 1280},
		{lab.LaptopIP6, lab.GWPublicIP6, 1280},
		{lab.LaptopIP4, lab.HostLANIP4, 1500},
		{lab.LaptopIP6, lab.HostPublicIP6, 1500},
	} {
		var got int
		start := time.Now()
		err := r.Laptop.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var perr error
			got, perr = PathMTU(ctx, netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst), 1500)
			return perr
		})
		if err != nil || got != c.want {
			t.Errorf("PathMTU %s -> %s = %d, %v; want %d", c.src, c.dst, got, err, c.want)
		}
		t.Logf("PathMTU %s -> %s = %d in %v", c.src, c.dst, got, time.Since(start).Round(time.Millisecond))
	}
}
