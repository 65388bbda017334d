package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// dnsSession is the split DNS of the tunnel: the stub resolver and the
// servers resolv.conf named before it pointed at the stub.
type dnsSession struct {
	stub     *splitdns.Stub
	upstream []netip.Addr
	status   control.DNSStatus
}

// recoverDNS undoes what a crashed session left in resolv.conf (journal
// in the state dir), before anything else starts.
func (a *Agent) recoverDNS() {
	res, err := splitdns.Restore(a.dir)
	if err != nil {
		a.log.Error("restore resolv.conf of a previous session", "err", err)
		return
	}
	if res.Changed {
		a.log.Warn("resolv.conf of a crashed session: "+res.Message(), "path", res.Path, "saved", res.SavedAs)
	} else if res.Journaled {
		a.log.Warn("restored resolv.conf left by a crashed session", "path", res.Path)
	}
}

// startDNS sets up the pushed split DNS once the tunnel carries traffic:
// the stub listens, then resolv.conf (journaled first) points at it. With
// nothing pushed it does nothing; with servers but no routing domains and
// no --all-traffic it uses none of it and says so. A failure is returned:
// `up` then fails and teardown undoes what was done.
func (a *Agent) startDNS(pc *api.PeerConfig, allTraffic bool) (*control.DNSStatus, error) {
	pushed, err := gwapi.ValidateDNS(pc)
	if err != nil {
		return nil, fmt.Errorf("gateway sent a bad peer config: %w", err)
	}
	if len(pushed.Servers) == 0 {
		return nil, nil
	}
	st := control.DNSStatus{Domains: pushed.Domains, Mode: "off"}
	for _, s := range pushed.Servers {
		st.Servers = append(st.Servers, s.String())
	}
	if len(pushed.Domains) == 0 && !allTraffic {
		st.Note = "the gateway's DNS servers answer all names (no routing domains): used only with --all-traffic"
		return &st, nil
	}
	a.stopDNS() // a switch from the fail-closed block: the old stub goes first
	all := len(pushed.Domains) == 0 && allTraffic
	if a.edge.resolverDir != "" && len(pushed.Domains) > 0 {
		return a.startResolverDir(st, pushed)
	}
	if a.edge.resolved != nil {
		if r := a.edge.resolved(a.edge.resolvConf); r != nil {
			return a.startResolved(r, st, pushed, all)
		}
	}
	listen := a.edge.stubListen
	if !listen.IsValid() {
		listen = netip.AddrPortFrom(splitdns.StubAddr, 53)
	}
	before, err := readFileMaybe(a.edge.resolvConf)
	if err != nil {
		return nil, err
	}
	upstream := splitdns.Nameservers(before)
	cfg := splitdns.Config{Listen: listen, Tunnel: splitdns.Port53(pushed.Servers), Domains: pushed.Domains,
		All: len(pushed.Domains) == 0 && allTraffic, Upstream: splitdns.Port53(upstream)}
	stub, err := splitdns.Start(cfg, a.log)
	if err != nil {
		return nil, err
	}
	listen = stub.Addr() // a test's port 0 is chosen now
	// The journal is written before resolv.conf changes; from here on
	// teardown (or the next start after a crash) restores it.
	if _, err := splitdns.Point(a.dir, a.edge.resolvConf, listen.Addr()); err != nil {
		stub.Close()
		return nil, err
	}
	st.Mode, st.All, st.Stub, st.ResolvConf = "stub", cfg.All, listen.String(), a.edge.resolvConf
	for _, u := range upstream {
		st.Upstream = append(st.Upstream, u.String())
	}
	a.mu.Lock()
	a.dns = &dnsSession{stub: stub, upstream: upstream, status: st}
	a.mu.Unlock()
	a.log.Info("split DNS through the stub resolver", "stub", listen, "servers", st.Servers, "domains", st.Domains, "all", st.All, "upstream", st.Upstream)
	return &st, nil
}

// startResolverDir writes a resolver file per routing domain (macOS,
// journaled first); a domain whose file exists is not ours to overwrite:
// it is left out and the status says so.
func (a *Agent) startResolverDir(st control.DNSStatus, pushed gwapi.PushedDNS) (*control.DNSStatus, error) {
	skipped, err := splitdns.PointResolverDir(a.dir, a.edge.resolverDir, pushed.Servers, pushed.Domains)
	if err != nil {
		return nil, err
	}
	st.Mode, st.ResolvConf = "resolver", a.edge.resolverDir
	if len(skipped) > 0 {
		st.Note = fmt.Sprintf("%s/%v exist and are not ClearPath's: not overwritten, those domains resolve as before", a.edge.resolverDir, skipped)
		a.log.Warn("resolver files exist, not overwritten", "dir", a.edge.resolverDir, "domains", skipped)
	}
	a.log.Info("split DNS through resolver files", "dir", a.edge.resolverDir, "servers", st.Servers, "domains", st.Domains)
	return &st, nil
}

// startResolved hands the split to systemd-resolved: the tunnel link gets
// the servers and routing domains (journaled first).
func (a *Agent) startResolved(r *splitdns.Resolved, st control.DNSStatus, pushed gwapi.PushedDNS, all bool) (*control.DNSStatus, error) {
	a.mu.Lock()
	name := ""
	if a.tun != nil {
		name = a.tun.Name
	}
	a.mu.Unlock()
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("tunnel link %q: %w", name, err)
	}
	if err := splitdns.PointResolved(a.dir, r, name, ifc.Index, pushed.Servers, pushed.Domains, all); err != nil {
		return nil, err
	}
	st.Mode, st.All, st.Stub = "resolved", all, splitdns.ResolvedStub
	a.log.Info("split DNS through systemd-resolved", "link", name, "servers", st.Servers, "domains", st.Domains, "all", all)
	return &st, nil
}

// stopDNS stops the stub and restores resolv.conf from the journal.
func (a *Agent) stopDNS() (msg string) {
	a.mu.Lock()
	d := a.dns
	a.dns = nil
	a.mu.Unlock()
	if d != nil {
		d.stub.Close()
	}
	res, err := splitdns.Restore(a.dir)
	switch {
	case err != nil:
		a.log.Error("restore resolv.conf", "err", err)
		return err.Error()
	case res.Changed:
		a.log.Warn(res.Message(), "path", res.Path, "saved", res.SavedAs)
		return res.Message()
	case res.Restored:
		a.log.Info("resolv.conf restored", "path", res.Path)
	}
	return ""
}

// followDNS runs on a network change: if the resolver file was rewritten
// with the new network's resolvers, the stub forwards to them from now on
// and the file points at the stub again (splitdns.Repoint).
func (a *Agent) followDNS() {
	if _, err := a.repoint(); err != nil && !errors.Is(err, control.ErrNoStub) {
		a.log.Error("follow the LAN's resolver change", "err", err)
	}
}

// RepointDNS implements control.DNSRepointer: what followDNS does, on
// demand (`vpn doctor --fix dns-leak-full-tunnel` after something rewrote
// resolv.conf while a full tunnel is up).
func (a *Agent) RepointDNS(context.Context) (control.RepointReport, error) {
	rep, err := a.repoint()
	if err != nil {
		return rep, fmt.Errorf("point resolv.conf back at the stub: %w", err)
	}
	if rep.Changed {
		// As on a network change: route planning sees the new upstream.
		if err := a.replan(); err != nil {
			a.log.Error("re-plan routes after re-pointing resolv.conf", "err", err)
		}
	}
	return rep, nil
}

// repoint points the resolver file back at the stub if it was rewritten:
// the rewritten file becomes the journal's "before" and its nameservers
// the stub's upstream. ErrNoStub when no stub runs.
func (a *Agent) repoint() (control.RepointReport, error) {
	a.mu.Lock()
	d := a.dns
	a.mu.Unlock()
	if d == nil || d.stub == nil {
		return control.RepointReport{}, control.ErrNoStub
	}
	before, changed, err := splitdns.Repoint(a.dir, d.stub.Addr().Addr())
	if err != nil {
		return control.RepointReport{}, err
	}
	if !changed {
		a.mu.Lock()
		defer a.mu.Unlock()
		return control.RepointReport{Upstream: d.status.Upstream}, nil
	}
	up := splitdns.Nameservers(before)
	d.stub.SetUpstream(splitdns.Port53(up))
	var ups []string
	for _, u := range up {
		ups = append(ups, u.String())
	}
	a.mu.Lock()
	if a.dns == d {
		d.upstream = up
		d.status.Upstream = ups
	}
	a.mu.Unlock()
	a.log.Info("the LAN's resolvers changed: the stub forwards to them, resolv.conf points at the stub again", "upstream", ups)
	return control.RepointReport{Changed: true, Upstream: ups}, nil
}

// resolvers are the LAN's resolvers for route planning (they stay outside
// the tunnel): those resolv.conf named before the stub, while it runs.
func (a *Agent) resolvers() []netip.Addr {
	a.mu.Lock()
	d := a.dns
	a.mu.Unlock()
	if d != nil {
		return d.upstream
	}
	return routes.ReadResolvers(a.edge.resolvConf)
}

// dnsStatus is the session's DNS status with the stub's counters now.
func (a *Agent) dnsStatus(s *control.Status) {
	if a.dns == nil || s.DNS == nil {
		return
	}
	d := a.dns.status
	d.ViaTunnel, d.ViaUpstream, d.Failed = a.dns.stub.ViaTunnel.Load(), a.dns.stub.ViaUpstream.Load(), a.dns.stub.Failed.Load()
	s.DNS = &d
}

func readFileMaybe(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

var _ control.DNSRepointer = (*Agent)(nil)
