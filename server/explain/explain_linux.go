package explain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Explain builds the answer from the store and the live kernel tables of
// this network namespace.
func Explain(ctx context.Context, req Request) (*Answer, error) {
	dsts, err := resolve(ctx, req.Host)
	if err != nil {
		return nil, err
	}
	a := &Answer{User: req.Email, Subject: req.Subject, Host: req.Host, Port: req.Port, Proto: req.Proto}
	target := Target{Host: req.Host, Port: req.Port, Proto: req.Proto}
	if target.Port != 0 && target.Proto == "" {
		target.Proto = "tcp"
		a.Proto = "tcp"
	}
	if a.User == "" {
		a.User = req.Subject
	}
	if d, err := req.Store.UserDisabled(ctx, req.Subject, req.Email); err != nil {
		return nil, err
	} else if d != nil {
		a.Disabled = fmt.Sprintf("disabled by %s on %s %s", d.Actor, d.Created.UTC().Format(time.RFC3339), d.Reason)
	}
	peers, err := req.Store.Peers(ctx, "")
	if err != nil {
		return nil, err
	}
	allocs, err := req.Store.Allocations(ctx, req.Subject)
	if err != nil {
		return nil, err
	}
	sys, err := routes.NewSystem()
	if err != nil {
		return nil, err
	}
	if c, ok := sys.(io.Closer); ok {
		defer c.Close()
	}
	snap, err := sys.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("read routes and rules: %w", err)
	}
	guard := hostguard.FromConfig(req.Config) // what the gateway's nftables table lets in
	local := false                            // some destination is the gateway's own address
	filtered := false                         // some verdict came from access rules
	for _, n := range req.Config.Networks {
		if req.Network != "" && n.Name != req.Network {
			continue
		}
		var peer *store.Peer
		for i := range peers {
			if peers[i].Subject == req.Subject && peers[i].Network == n.Name {
				peer = &peers[i]
			}
		}
		var addr store.Allocation
		key := ""
		switch {
		case peer != nil && peer.ExpiresAt.After(req.Now):
			addr, key = peer.Addr, "registered, expires "+peer.ExpiresAt.UTC().Format(time.RFC3339)
		case peer != nil:
			addr, key = peer.Addr, "expired at "+peer.ExpiresAt.UTC().Format(time.RFC3339)
		default:
			for _, al := range allocs {
				if al.Network == n.Name {
					addr, key = al.Addr, "no key registered (address reserved from an earlier registration)"
				}
			}
		}
		if !addr.V4.IsValid() {
			if req.Network == "" {
				continue // never joined this network
			}
			key = "never joined (a new member's first address stands in)"
			addr.V4 = store.AddrAt(n.Pool4(), 2)
			if p6 := n.Pool6(); p6.IsValid() {
				addr.V6 = store.AddrAt(p6, 2)
			}
		}
		// Access rules by group use the groups stored with the peer (as
		// its token carried them at registration or renewal).
		groups := req.Groups
		if peer != nil {
			groups = peer.Groups
		}
		pol := n.PolicyFor(req.Subject, req.Email, groups)
		for _, dst := range dsts {
			src := addr.V4
			if dst.Is6() {
				src = addr.V6
			}
			v := Verdict{Network: n.Name, Group: n.Group, Interface: n.Interface, Destination: dst.String(), Key: key}
			// The client routes allow, and what the user's rules widen to
			// (pushed at registration).
			for _, p := range append(slices.Clone(n.Allow), pol.Widened()...) {
				if p.Contains(dst) {
					v.ClientRoutes = true
				}
			}
			if !src.IsValid() {
				v.Why = "the network has no IPv6 pool: the user has no IPv6 address in it"
				a.Networks = append(a.Networks, v)
				continue
			}
			v.Source = src.String()
			walk := analysis.Walk(snap, analysis.Flow{Src: src, Dst: dst, IIF: n.Interface})
			d := Judge(walk, dst, n.Interface)
			v.Steps, v.Path = walk.Steps, Path(walk)
			if walk.Rule != nil {
				v.Rule = walk.Rule.String()
			}
			if walk.Route.Dst.IsValid() {
				v.Route = walk.Route.String()
			}
			kernelOK, kernel := kernelLookup(sys, src, dst, n.Interface)
			v.Kernel = kernel
			hostOK, hostWhy := true, ""
			if d.Local {
				hostOK, hostWhy = guard.Local(n.Interface, dst, req.Port)
				v.Path = append(v.Path, "host guard -> "+hostWhy)
			}
			// Access rules (config access.go), enforced by the eBPF filter
			// before the routing tables see the packet.
			acc := JudgeAccess(n, pol, a.User, dst, target)
			accessOK := acc.Allowed
			if acc.Filtered {
				v.Access = &acc
				v.Path = append([]string{"eBPF filter -> " + map[bool]string{true: "allowed", false: "dropped"}[accessOK] + ": " + acc.Why}, v.Path...)
			}
			v.Allowed = kernelOK && d.Forwarded && hostOK && accessOK && peer != nil && peer.ExpiresAt.After(req.Now) && a.Disabled == "" && v.ClientRoutes
			switch {
			case !accessOK:
				v.Why = fmt.Sprintf("refused: %s (the tables alone would say: %s)", acc.Why, d.Why)
			case kernelOK != d.Forwarded:
				v.Why = fmt.Sprintf("the tables say %q but the kernel answers %q; trust the kernel", d.Why, kernel)
			case !d.Forwarded:
				v.Why = "refused: " + d.Why
			case !hostOK:
				v.Why = fmt.Sprintf("refused: %s, and %s", d.Why, hostWhy)
			case !v.ClientRoutes:
				v.Why = fmt.Sprintf("%s; but %s is outside the network's allowed CIDRs, so the user's client does not send it into the tunnel", d.Why, dst)
			case a.Disabled != "":
				v.Why = fmt.Sprintf("allowed by the tables (%s), but the user is %s", d.Why, a.Disabled)
			case peer == nil || !peer.ExpiresAt.After(req.Now):
				v.Why = fmt.Sprintf("allowed by the tables (%s) once the user registers a key (%s)", d.Why, key)
			case d.Local:
				v.Why = fmt.Sprintf("allowed: %s, and %s", d.Why, hostWhy)
			case acc.Filtered:
				v.Why = fmt.Sprintf("allowed: %s; %s", acc.Why, d.Why)
			default:
				v.Why = "allowed: " + d.Why
			}
			local = local || d.Local
			filtered = filtered || acc.Filtered
			a.Reachable = a.Reachable || v.Allowed
			a.Networks = append(a.Networks, v)
		}
	}
	switch {
	case len(a.Networks) == 0 && req.Network != "":
		return nil, fmt.Errorf("no network %q in the configuration", req.Network)
	case len(a.Networks) == 0:
		a.Summary = fmt.Sprintf("%s has joined no network on this gateway: unreachable (use --network to see what a member would get)", a.User)
	case a.Reachable:
		a.Summary = fmt.Sprintf("%s CAN reach %s", a.User, req.Host)
	default:
		a.Summary = fmt.Sprintf("%s can NOT reach %s", a.User, req.Host)
	}
	switch {
	case req.Port != 0 && local:
		a.PortComment = fmt.Sprintf("port %d of the gateway host itself is open to a network only by its local_ports (tcp or udp) or as the API's port", req.Port)
	case req.Port != 0 && !filtered:
		a.PortComment = fmt.Sprintf("no access rule applies to %s here, and the gateway's routing decides by address only: port %d is neither allowed nor refused by it (a firewall in the VPC may still decide)", a.User, req.Port)
	}
	return a, nil
}

func resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var out []netip.Addr
	var v4, v6 bool
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() && !v4 || ip.Is6() && !v6 {
			out = append(out, ip)
			v4, v6 = v4 || ip.Is4(), v6 || ip.Is6()
		}
	}
	return out, nil
}

// kernelLookup asks the kernel which route a packet from src arriving on
// iif to dst takes (ip route get fibmatch DST from SRC iif IIF).
func kernelLookup(sys routes.System, src, dst netip.Addr, iif string) (bool, string) {
	r, err := sys.Lookup(routes.Query{Dst: dst, Src: src, IIF: iif, FIBMatch: true})
	cmd := fmt.Sprintf("ip route get fibmatch %s from %s iif %s", dst, src, iif)
	switch {
	case errors.Is(err, syscall.EINVAL):
		return false, cmd + ": refused (EINVAL: the route found is a blackhole)"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return false, cmd + ": no route to host (forwarding off, or an unreachable route)"
	case errors.Is(err, syscall.ENETUNREACH):
		return false, cmd + ": network unreachable (no route)"
	case errors.Is(err, syscall.EACCES):
		return false, cmd + ": prohibited (EACCES: a prohibit route or rule)"
	case errors.Is(err, syscall.ENODEV):
		return false, cmd + ": no such interface (is the gateway running?)"
	case err != nil:
		return false, cmd + ": " + err.Error()
	}
	ok := (r.Type == routes.TypeUnicast && r.Device != iif) || r.Type == routes.TypeLocal
	return ok, cmd + ": " + r.String()
}
