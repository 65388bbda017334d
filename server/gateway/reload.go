package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/wgdev"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/certs"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// netChange is what a reload does to one network.
type netChange struct {
	op       string // add, remove, recreate, update
	old, new config.Network
	idx      int // position in the file that defines it (new, or old for remove)
	details  []string
}

// planReload compares the running configuration with next. Fields that only
// a restart can change are errors naming the field; so is the pool of a
// network that keeps running (its users' addresses come from it).
func planReload(cur, next *config.Config) (changes []netChange, settings []string, err error) {
	var errs []error
	restart := func(field string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			errs = append(errs, fmt.Errorf("%s: changing it needs a restart of the gateway (running: %v, file: %v)", field, a, b))
		}
	}
	restart("listen", cur.Listen, next.Listen)
	if cur.Store != next.Store {
		// Never the DSN itself: it may hold the PostgreSQL password, and
		// this error goes to the log, the audit log and the admin.
		errs = append(errs, fmt.Errorf("store: changing it needs a restart of the gateway (running: %s, file: %s)", config.RedactDSN(cur.Store), config.RedactDSN(next.Store)))
	}
	restart("state_dir", cur.StateDir, next.StateDir)
	restart("admin_socket", cur.AdminSocket, next.AdminSocket)
	restart("metrics_listen", cur.MetricsListen, next.MetricsListen)
	// The admin page (adminweb.go) reads its settings once, at start.
	restart("admin_listen", cur.AdminListen, next.AdminListen)
	restart("admin_group", cur.AdminGroup, next.AdminGroup)
	restart("admin", cur.Admin, next.Admin)
	restart("api", cur.API, next.API)
	restart("trusted_proxies", cur.TrustedProxies, next.TrustedProxies)
	if cur.MetricsToken != next.MetricsToken { // a secret: no values
		errs = append(errs, errors.New("metrics_token: changing it needs a restart of the gateway"))
	}
	restart("oidc.issuer", cur.OIDC.Issuer, next.OIDC.Issuer)
	restart("oidc.client_id", cur.OIDC.ClientID, next.OIDC.ClientID)
	restart("oidc.audience", cur.OIDC.Audience, next.OIDC.Audience)
	restart("oidc.groups_claim", cur.OIDC.GroupsClaim, next.OIDC.GroupsClaim)
	restart("oidc.allow_http", cur.OIDC.AllowHTTP, next.OIDC.AllowHTTP)
	if cur.TLS.Mode() != next.TLS.Mode() {
		errs = append(errs, fmt.Errorf("tls: switching from %s to %s needs a restart of the gateway", certs.ModeName(cur.TLS.Mode()), certs.ModeName(next.TLS.Mode())))
	} else if cur.TLS.Mode() == "acme" {
		restart("tls.acme", *cur.TLS.ACME, *next.TLS.ACME)
	}
	if cur.Endpoint != next.Endpoint {
		settings = append(settings, "endpoint")
	}
	if cur.KeyTTL != next.KeyTTL {
		settings = append(settings, "key_ttl")
	}
	if !reflect.DeepEqual(cur.Lifecycle, next.Lifecycle) {
		settings = append(settings, "lifecycle")
	}
	if cur.AllocationGrace != next.AllocationGrace {
		settings = append(settings, "allocation_grace")
	}
	if cur.AuditRetain() != next.AuditRetain() {
		settings = append(settings, "audit.retain")
	}
	if cur.OIDC.EmailVerifiedRequired() != next.OIDC.EmailVerifiedRequired() {
		settings = append(settings, "oidc.require_email_verified")
	}

	curBy := map[string]config.Network{}
	for _, n := range cur.Networks {
		curBy[n.Name] = n
	}
	nextBy := map[string]bool{}
	for i, n := range cur.Networks {
		if !slices.ContainsFunc(next.Networks, func(m config.Network) bool { return m.Name == n.Name }) {
			changes = append(changes, netChange{op: "remove", old: n, idx: i})
		}
	}
	for i, n := range next.Networks {
		nextBy[n.Name] = true
		o, ok := curBy[n.Name]
		f := func(field string) string { return fmt.Sprintf("networks[%d].%s", i, field) }
		switch {
		case !ok:
			changes = append(changes, netChange{op: "add", new: n, idx: i, details: []string{"interface " + n.Interface, "port " + strconv.Itoa(n.ListenPort)}})
			continue
		case !slices.Equal(o.Pool, n.Pool):
			errs = append(errs, fmt.Errorf("%s: the pool of running network %s cannot change by reload (its users' addresses come from it); remove the network, reload, then add it back", f("pool"), n.Name))
			continue
		}
		var d []string
		diff := func(what string, a, b any) {
			if !reflect.DeepEqual(a, b) {
				d = append(d, fmt.Sprintf("%s %v -> %v", what, a, b))
			}
		}
		if o.Interface != n.Interface || o.ListenPort != n.ListenPort || o.MTU != n.MTU {
			diff("interface", o.Interface, n.Interface)
			diff("listen_port", o.ListenPort, n.ListenPort)
			diff("mtu", o.MTU, n.MTU)
			changes = append(changes, netChange{op: "recreate", old: o, new: n, idx: i, details: d})
			continue
		}
		for _, p := range n.Allow {
			if !slices.Contains(o.Allow, p) {
				d = append(d, "allow +"+p.String())
			}
		}
		for _, p := range o.Allow {
			if !slices.Contains(n.Allow, p) {
				d = append(d, "allow -"+p.String())
			}
		}
		diff("table", o.Table, n.Table)
		diff("group", o.Group, n.Group)
		diff("probe", o.Probe, n.Probe)
		if !slices.Equal(o.LocalPorts, n.LocalPorts) {
			d = append(d, fmt.Sprintf("local_ports %v -> %v", o.LocalPorts, n.LocalPorts))
		}
		if !reflect.DeepEqual(o.Access, n.Access) {
			d = append(d, fmt.Sprintf("access %d -> %d rule(s)", len(o.Access), len(n.Access)))
		}
		if !slices.Equal(o.MayWiden, n.MayWiden) {
			d = append(d, fmt.Sprintf("may_widen %v -> %v", o.MayWiden, n.MayWiden))
		}
		oS, oD := o.PushedDNS()
		nS, nD := n.PushedDNS()
		if !slices.Equal(oS, nS) || !slices.Equal(oD, nD) {
			d = append(d, fmt.Sprintf("dns %v %v -> %v %v (clients get it when they next register)", oS, oD, nS, nD))
		}
		if len(d) > 0 {
			changes = append(changes, netChange{op: "update", old: o, new: n, idx: i, details: d})
		}
	}
	// A network moving to a table another running network keeps using
	// until it moves too would flush that network's table.
	for _, c := range changes {
		if c.op != "update" || c.old.Table == c.new.Table {
			continue
		}
		for _, n := range cur.Networks {
			if n.Name != c.new.Name && n.Table == c.new.Table && nextBy[n.Name] {
				errs = append(errs, fmt.Errorf("networks[%d].table: %d is still used by running network %s; move the tables in two reloads", c.idx, c.new.Table, n.Name))
			}
		}
	}
	return changes, settings, errors.Join(errs...)
}

// preflight checks what would make adding a network fail, before anything
// is touched: an interface name or UDP port already taken on this host.
func (g *Gateway) preflight(changes []netChange) error {
	freed := map[string]bool{}
	freedPort := map[int]bool{}
	for _, c := range changes {
		if c.op == "remove" || c.op == "recreate" {
			freed[c.old.Interface] = true
			freedPort[c.old.ListenPort] = true
		}
	}
	var errs []error
	for _, c := range changes {
		if c.op != "add" && c.op != "recreate" {
			continue
		}
		n := c.new
		if !freed[n.Interface] && (wgdev.InUse(n.Interface) || linkExists(n.Interface)) {
			errs = append(errs, fmt.Errorf("networks[%d].interface: %s already exists on this host", c.idx, n.Interface))
		}
		if !freedPort[n.ListenPort] {
			if pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(n.ListenPort)); err != nil {
				errs = append(errs, fmt.Errorf("networks[%d].listen_port: UDP port %d is in use on this host", c.idx, n.ListenPort))
			} else {
				pc.Close()
			}
		}
	}
	return errors.Join(errs...)
}

// Reload re-reads the configuration file and applies the difference:
// networks added, removed or recreated (interface, port or MTU changed),
// allow lists and tables changed in place. Networks that do not change are
// not touched, so their peers lose nothing. The file is validated first
// and a reload that fails half way is rolled back; in both cases the
// running configuration stays as it was and the error names the field or
// the network.
func (g *Gateway) Reload(ctx context.Context, actor, via string) (admin.ReloadResult, error) {
	start := time.Now()
	res, err := g.reload(ctx)
	res.Took = time.Since(start).Round(time.Microsecond).String()
	rec := store.AuditRecord{Actor: actor, Action: audit.Reload, Remote: via}
	if err != nil {
		g.metrics.Reloads.WithLabelValues("failed").Inc()
		g.metrics.Errors.WithLabelValues("reload").Inc()
		rec.Detail = "failed, nothing changed: " + err.Error()
	} else {
		g.metrics.Reloads.WithLabelValues("ok").Inc()
		rec.Detail = res.Summary() + " (took " + res.Took + ")"
	}
	g.audit.Record(ctx, rec)
	return res, err
}

func (g *Gateway) reload(ctx context.Context) (admin.ReloadResult, error) {
	var res admin.ReloadResult
	if g.configPath == "" {
		return res, errNoConfigPath
	}
	next, err := config.Load(g.configPath)
	if err != nil {
		return res, err
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	changes, settings, err := planReload(g.cfg, next)
	if err != nil {
		return res, fmt.Errorf("config %s: %w", g.configPath, err)
	}
	if err := g.preflight(changes); err != nil {
		return res, fmt.Errorf("config %s: %w", g.configPath, err)
	}
	if g.flows == nil && next.HasAccessRules() {
		return res, fmt.Errorf("config %s: networks[].access needs the eBPF flow filter, which is off on this gateway; nothing changed", g.configPath)
	}
	if err := g.net.checkTables(next.Networks); err != nil {
		return res, fmt.Errorf("config %s: %w; nothing changed", g.configPath, err)
	}
	// The certificate is read before anything changes, so a bad file
	// fails the reload with the running certificate still served.
	var pair *tls.Certificate
	if g.certs != nil {
		if pair, err = g.certs.Prepare(next.TLS); err != nil {
			return res, fmt.Errorf("config %s: %w", g.configPath, err)
		}
	}
	// While devices come and go the host guard holds the rules of both
	// configurations, keeping only what both open (hostguard.Merge).
	if err := g.guardHost(hostguard.Merge(hostguard.FromConfig(g.cfg), hostguard.FromConfig(next))); err != nil {
		return res, fmt.Errorf("%w; nothing changed", err)
	}
	// Access rules reach live peers before the routes change: a table
	// that starts routing what a rule widens to finds every other peer of
	// the network already held to allow by the filter (and a route that
	// goes finds the policies still wider, which is harmless).
	live := func() []store.Peer {
		var ps []store.Peer
		for _, t := range g.life.Tracked() {
			ps = append(ps, t.Peer)
		}
		return ps
	}
	g.flows.setNetworks(next.Networks)
	if err := g.flows.reapply(live()); err != nil {
		g.log.Error("reload: access rules on live peers", "err", err)
	}
	if err := g.apply(ctx, changes, g.cfg.Networks, next.Networks); err != nil {
		g.flows.setNetworks(g.cfg.Networks)
		if rerr := g.flows.reapply(live()); rerr != nil {
			g.log.Error("reload rollback: access rules on live peers", "err", rerr)
		}
		g.guardHost(hostguard.FromConfig(g.cfg))
		return res, err
	}
	g.guardHost(hostguard.FromConfig(next))
	webhookChanged := !reflect.DeepEqual(g.cfg.Lifecycle.Webhook, next.Lifecycle.Webhook)
	if g.certs != nil && g.certs.Swap(next.TLS, pair) {
		settings = append(settings, "tls certificate")
		g.log.Info("TLS certificate reloaded", "cert", next.TLS.Cert, "certificate", certs.Describe(g.certs.Leaf()))
	}
	g.cfg = next
	// Peers of networks the reload brought up got next's rules as they
	// came up; the others got them above.
	g.life.SetSettings(settingsOf(next))
	g.store.SetAllocationGrace(next.AllocationGrace)
	g.verifier.SetRequireEmailVerified(next.OIDC.EmailVerifiedRequired())
	if webhookChanged {
		g.setWebhook(next.Lifecycle.Webhook)
	}
	for _, c := range changes {
		name := c.new.Name
		if c.op == "remove" {
			name = c.old.Name
		}
		res.Changes = append(res.Changes, admin.Change{Network: name, Op: c.op, Details: c.details})
	}
	res.Settings = settings
	return res, nil
}

// apply brings the devices and the policy from cur to next: devices of
// removed and recreated networks go (freeing names and ports), devices of
// added and recreated ones come, then one reconcile makes the policy of
// every network next's (make-before-break: new rules and routes before the
// old ones go). If a step fails, the steps taken are undone newest first
// and the policy is reconciled back to cur.
func (g *Gateway) apply(ctx context.Context, changes []netChange, cur, next []config.Network) (err error) {
	s := newSteps(g.log, g.hooks.step())
	defer func() {
		if err != nil {
			s.unwind()
			if rerr := g.net.reconcile(cur); rerr != nil {
				g.log.Error("reload rollback: network policy", "err", rerr)
			}
		}
	}()
	put := func(nw *network) {
		g.mu.Lock()
		g.networks[nw.cfg.Name] = nw
		g.mu.Unlock()
	}
	take := func(name string) *network {
		g.mu.Lock()
		defer g.mu.Unlock()
		nw := g.networks[name]
		delete(g.networks, name)
		return nw
	}
	up := func(n config.Network) error {
		nw, peers, err := g.bringUp(ctx, n)
		if err != nil {
			return err
		}
		put(nw)
		g.life.AddNetwork(ctx, n.Name, peers)
		return nil
	}
	down := func(name string) {
		g.life.RemoveNetwork(name)
		if nw := take(name); nw != nil {
			g.tearDown(nw)
		}
	}
	for _, c := range changes {
		if c.op != "remove" && c.op != "recreate" {
			continue
		}
		old := c.old
		down(old.Name)
		s.did("reload: down "+old.Name, func() {
			if err := up(old); err != nil {
				g.log.Error("reload rollback: cannot bring back network", "network", old.Name, "err", err)
			}
		})
	}
	for _, c := range changes {
		if c.op != "update" {
			continue
		}
		cur := g.device(c.old.Name)
		if cur == nil {
			return fmt.Errorf("networks[%d] (%s): not running", c.idx, c.new.Name)
		}
		nw := *cur
		nw.cfg = c.new
		put(&nw)
		s.did("reload: update "+c.new.Name, func() { put(cur) })
	}
	for _, c := range changes {
		if c.op != "add" && c.op != "recreate" {
			continue
		}
		n := c.new
		if err := up(n); err != nil {
			return fmt.Errorf("networks[%d] (%s): %w; the reload was rolled back, the running configuration is unchanged", c.idx, n.Name, err)
		}
		s.did("reload: up "+n.Name, func() { down(n.Name) })
	}
	if err := g.net.reconcile(next); err != nil {
		return fmt.Errorf("%w; the reload was rolled back, the running configuration is unchanged", err)
	}
	s.did("reload: network policy", nil)
	return nil
}

// guardHost installs the host guard's rules for spec unless they are
// already what runs and the table is there (a reload that does not touch
// them keeps the drop counters; one deleted by hand comes back). A failure after the devices changed is logged: the rules
// left are the merged ones, stricter than either configuration.
func (g *Gateway) guardHost(spec hostguard.Spec) error {
	if reflect.DeepEqual(spec, g.hostGuard) {
		if ok, err := g.deps.guard.Exists(); err == nil && ok {
			return nil
		} // else put it back (deleted behind the gateway's back)
	}
	if err := g.deps.guard.Apply(spec); err != nil {
		g.log.Error("host guard: rules not updated", "err", err)
		return err
	}
	g.hostGuard = spec
	return nil
}
