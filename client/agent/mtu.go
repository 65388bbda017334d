package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/clearpath-vpn/clearpath/client/tunnel"
)

// minIPv6MTU is the smallest MTU a link carrying IPv6 may have: below it
// the kernel takes IPv6 off the link.
const minIPv6MTU = 1280

// withoutIPv6 drops the IPv6 tunnel addresses and the pushed IPv6
// prefixes but ::/0 (a full tunnel still refuses IPv6 rather than leak
// it: PlanTunnel blocks a full family the tunnel has no address in).
func withoutIPv6(addrs, prefixes []netip.Prefix) ([]netip.Prefix, []netip.Prefix) {
	a := slices.DeleteFunc(slices.Clone(addrs), func(p netip.Prefix) bool { return p.Addr().Is6() })
	p := slices.DeleteFunc(slices.Clone(prefixes), func(p netip.Prefix) bool { return p.Addr().Is6() && p.Bits() > 0 })
	return a, p
}

func hasIPv6(addrs []netip.Prefix) bool {
	return slices.ContainsFunc(addrs, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// measurePathMTU probes, through the tunnel, the largest packet that
// reaches each of the gateway's tunnel addresses we have a source for
// and comes back (tunnel.PathMTU), families in parallel, and returns the
// smallest.
func measurePathMTU(ctx context.Context, ours []netip.Prefix, gateway []string, hi int) (int, error) {
	type result struct {
		mtu int
		err error
	}
	var chans []chan result
	for _, p := range probePairs(ours, gateway) {
		ch := make(chan result, 1)
		chans = append(chans, ch)
		go func() {
			m, err := tunnel.PathMTU(ctx, p[0], p[1], hi)
			ch <- result{m, err}
		}()
	}
	if len(chans) == 0 {
		return 0, fmt.Errorf("no gateway tunnel address to probe")
	}
	best := hi
	var firstErr error
	for _, ch := range chans {
		r := <-ch
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		best = min(best, r.mtu)
	}
	return best, firstErr
}

// autoMTU lowers the running tunnel's MTU to the measured path MTU (`vpn
// up --mtu auto`) and returns it with a notice for the user. Below 1280
// the tunnel cannot carry IPv6: its IPv6 addresses and routes go (a full
// tunnel keeps refusing IPv6) and the notice says so.
func (a *Agent) autoMTU(ctx context.Context, t *tunnel.Tunnel, ours []netip.Prefix, gateway []string) (int, string, error) {
	pm, err := measurePathMTU(ctx, ours, gateway, t.MTU)
	if err != nil {
		return 0, "", fmt.Errorf("--mtu auto: measure the path MTU: %w", err)
	}
	if pm >= t.MTU {
		return pm, fmt.Sprintf("path MTU through the tunnel: %d bytes or more; tunnel MTU stays %d", pm, t.MTU), nil
	}
	notice := fmt.Sprintf("path MTU through the tunnel is %d bytes: tunnel MTU lowered from %d to %d", pm, t.MTU, pm)
	dropV6 := pm < minIPv6MTU && hasIPv6(ours)
	if dropV6 {
		a.mu.Lock()
		a.spec.Addresses, a.spec.Prefixes = withoutIPv6(a.spec.Addresses, a.spec.Prefixes)
		a.mu.Unlock()
		notice += fmt.Sprintf("; IPv6 needs at least %d, so the tunnel carries IPv4 only on this network", minIPv6MTU)
	}
	if err := t.SetMTU(pm); err != nil {
		return 0, "", fmt.Errorf("--mtu auto: %w", err)
	}
	if dropV6 {
		if err := a.replan(); err != nil {
			return 0, "", fmt.Errorf("--mtu auto: routes without IPv6: %w", err)
		}
	}
	a.log.Info("tunnel MTU set to the measured path MTU", "interface", t.Name, "path_mtu", pm, "ipv6_dropped", dropV6)
	return pm, notice, nil
}
