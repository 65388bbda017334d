// Package agent is the background process that holds the tunnel. It is the
// only part of the client that runs as root and changes routes; the CLI and
// the tray drive it over the control socket.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/gwapi"
	"github.com/clearpath-vpn/clearpath/client/key"
	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/client/statedir"
	"github.com/clearpath-vpn/clearpath/client/tunnel"
	"github.com/clearpath-vpn/clearpath/internal/envvar"
	"github.com/clearpath-vpn/clearpath/internal/version"
	"github.com/clearpath-vpn/clearpath/routes"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// loadedAt is when this package was initialised, near the process's start:
// "agent ready" logs the time from there (the agent's own start-up, which
// `vpn up` waits for when it starts the agent).
var loadedAt = time.Now()

// DefaultTimeout bounds `up` when the request names none.
const DefaultTimeout = 15 * time.Second

// DefaultMaxPrefixes bounds the prefixes a gateway may push when the
// request names no limit (`vpn up --max-prefixes`).
const DefaultMaxPrefixes = 1000

// Agent holds at most one tunnel.
type Agent struct {
	dir    string
	log    *slog.Logger
	engine *routes.Engine
	sys    routes.System

	cfg   Config
	onEnd func() // ends Run (the session ended on its own: expiry)

	mu     sync.Mutex
	status control.Status
	tun    *tunnel.Tunnel
	spec   routes.TunnelSpec
	stop   context.CancelFunc // ends the session's route watcher and renewal
	sess   *session           // the current registration
	dns    *dnsSession        // split DNS (dns.go), nil when none
	// hold is the blocked tunnel's endpoint while a `vpn up` from the
	// fail-closed block replaces it (the block held meanwhile).
	hold atomic.Pointer[netip.Addr]

	renewMu sync.Mutex // one renewal at a time

	edge edges
}

// edges are the agent's reach beyond its routes System: the WireGuard
// device, the probe through it, the network watcher, the resolver file
// and the clock. Unit tests replace them (a wireguard-go device over
// tun/tuntest and conn/bindtest, a fake clock) to run without root.
type edges struct {
	tunnelUp func(tunnel.Config, *slog.Logger) (*tunnel.Tunnel, error)
	// tunnelPrepare makes the device while the registration is in
	// flight (nil: tunnelUp makes it after).
	tunnelPrepare func(name string, mtu int, priv wgtypes.Key, log *slog.Logger) (preparedTunnel, error)
	pickName      func() (string, error)
	probe         func(ctx context.Context, src, dst netip.Addr) error
	watch         func(ctx context.Context, debounce time.Duration, onChange func()) error
	resolvConf    string
	stubListen    netip.AddrPort                             // the DNS stub's address (zero: splitdns.StubAddr:53)
	resolved      func(resolvConf string) *splitdns.Resolved // systemd-resolved when in charge (nil edge: never)
	// resolverDir: per-domain resolver files (macOS /etc/resolver; "" none).
	resolverDir string
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time
}

func machineEdges() edges {
	return edges{tunnelUp: tunnel.Up, tunnelPrepare: machinePrepare, pickName: tunnel.PickName, probe: tunnel.Probe, watch: routes.Watch,
		resolvConf: "/etc/resolv.conf", resolved: splitdns.SystemResolved, resolverDir: resolverDir, now: time.Now, after: time.After}
}

// New returns an agent keeping its state in dir.
func New(dir string, sys routes.System, log *slog.Logger) *Agent {
	return &Agent{dir: dir, log: log, sys: sys, engine: routes.NewEngine(sys, dir), status: control.Status{State: control.StateDown}, edge: machineEdges()}
}

// Config is how the agent is run (`vpn agent` flags).
type Config struct {
	Dir string
	// Socket is the control socket (default control.SocketFor(Dir)).
	Socket string
	// Group names the operators' group (a name or a gid; default
	// "clearpath"; "-" for none): its members may drive the agent.
	Group string
	// Server is the gateway members may connect to; when empty, the one in
	// the state dir's `server` file, which the first root `up` writes.
	Server string
	// FailClosed keeps a full tunnel's routes (the block) in place when
	// the registration expires unrenewed, instead of restoring routing.
	FailClosed bool
	// Ready, when set, is called once the control socket listens and is
	// served (the lock held, the journal replayed): `vpn agent
	// --ready-fd` tells the CLI that started it (client/local).
	Ready func()
}

// ServerFile holds, in the state dir, the server group members may use.
const ServerFile = "server"

// Run takes the state dir's lock, recovers what a crashed session left,
// serves the control socket and returns when ctx ends or after `down`,
// having torn the tunnel down.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return run(ctx, cfg, log, func() (*Agent, error) {
		sys, err := routes.NewSystem()
		if err != nil {
			return nil, err
		}
		return New(cfg.Dir, sys, log), nil
	})
}

// run is Run with the agent made by newAgent once the lock is held (unit
// tests give one on an in-memory routes System).
func run(ctx context.Context, cfg Config, log *slog.Logger, newAgent func() (*Agent, error)) error {
	dir := cfg.Dir
	unlock, err := Lock(dir, 0)
	if err != nil {
		return err
	}
	defer unlock()
	a, err := newAgent()
	if err != nil {
		return err
	}
	a.cfg = cfg
	recoverStart := time.Now()
	a.recoverDNS()
	if rep, err := a.engine.Recover(); err != nil {
		log.Error("recover routes of a previous session", "err", err)
	} else if !rep.Empty() {
		log.Warn("restored routes left by a crashed session", "undone", len(rep.Undone), "swept", len(rep.Swept), "problems", rep.Problems)
	}
	recovered := time.Since(recoverStart)
	sock := cfg.Socket
	if sock == "" {
		sock = control.SocketFor(dir)
	}
	pol, err := a.policy()
	if err != nil {
		return err
	}
	ln, err := listen(sock, pol)
	if err != nil {
		return err
	}
	if pf, err := statedir.OpenFile(dir, "agent.pid", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
		fmt.Fprintf(pf, "%d\n", os.Getpid())
		pf.Close()
	}
	defer os.Remove(filepath.Join(dir, "agent.pid"))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.onEnd = cancel
	srv := control.Serve(ln, a, cancel, pol)
	log.Info("agent ready", "socket", sock, "pid", os.Getpid(), "group", pol.GroupName, "group_access", pol.HasGroup,
		"start_ms", float64(time.Since(loadedAt).Microseconds())/1000, "recover_ms", float64(recovered.Microseconds())/1000)
	if cfg.Ready != nil {
		cfg.Ready() // after the log line: whoever waits sees it written
	}
	<-ctx.Done()
	// Let the answer to `down` reach the CLI before the socket closes.
	shut, c := context.WithTimeout(context.Background(), 2*time.Second)
	defer c()
	srv.Shutdown(shut)
	a.teardown()
	os.Remove(sock)
	log.Info("agent stopped")
	return nil
}

// ErrRunning: an agent holds the state dir's lock (Lock).
var ErrRunning = errors.New("an agent is running")

// Lock takes the state dir's lock, which the agent holds while it runs, so
// that nothing else (`vpn down` recovering after a crash, `vpn routes
// restore`) touches the journal at the same time. It waits up to wait for
// a dying agent to let go. As root, it first refuses a state dir another
// user could write (statedir.Check), so root never replays, reads or
// writes what someone else planted there.
func Lock(dir string, wait time.Duration) (unlock func(), err error) {
	if err := statedir.Ensure(dir); err != nil {
		return nil, err
	}
	f, err := statedir.OpenFile(dir, "agent.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return func() { f.Close() }, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w for %s", ErrRunning, dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Status implements control.Handler.
func (a *Agent) Status() control.Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.AgentPID = os.Getpid()
	s.AgentVersion = version.String()
	if a.tun != nil {
		if st, err := a.tun.Stats(); err == nil {
			s.RxBytes, s.TxBytes = st.RxBytes, st.TxBytes
			if !st.LastHandshake.IsZero() {
				hs := st.LastHandshake.UTC()
				age := time.Since(hs).Seconds()
				s.LatestHandshake, s.HandshakeAgeSec = &hs, &age
			}
		}
		a.dnsStatus(&s)
		s.FullTunnel = false
		// One snapshot for the overlaps and the installed list (reading
		// 10,000 routes twice per status doubled the agent's work).
		if snap, err := a.sys.Snapshot(); err == nil {
			for _, o := range routes.Overlaps(snap, a.spec) {
				s.Overlaps = append(s.Overlaps, control.Overlap{Pushed: o.Pushed.String(), Local: o.Local.String(), Winner: o.Winner, Reason: o.Reason})
			}
			rs, rules := routes.OwnedItems(snap)
			// "Full tunnel" is what the kernel has, never the flag alone.
			v4, v6 := routes.InstalledFullTunnel(rs, a.tun.Name)
			s.FullTunnel = v4 || v6
			for _, r := range rs {
				s.Routes = append(s.Routes, r.String())
			}
			for _, r := range rules {
				s.Rules = append(s.Rules, r.String())
			}
		}
	}
	return s
}

// Up implements control.Handler: connect, and answer only once a reply came
// back through the tunnel; on failure roll everything back.
func (a *Agent) Up(ctx context.Context, req control.UpRequest) (control.Status, error) {
	a.mu.Lock()
	// Fail-closed after an expiry: the block holds until the new session's
	// routes replace the old ones (connect with held).
	blocked := a.status
	held := blocked.State == control.StateBlocked
	if !held && (a.status.State == control.StateUp || a.status.State == control.StateConnecting) {
		s := a.status
		a.mu.Unlock()
		if s.State == control.StateUp && s.Server == req.Server && (req.Network == "" || req.Network == s.Network) {
			// Already connected: renew the registration in place with
			// the token just handed over (a fresh login rotates the key).
			if req.Token != "" {
				if err := a.renewWith(ctx, req); err != nil {
					return a.Status(), err
				}
			}
			return a.Status(), nil
		}
		return s, fmt.Errorf("already %s to %s (network %s): run `vpn down` first", s.State, s.Server, s.Network)
	}
	a.status = control.Status{State: control.StateConnecting, Server: req.Server}
	a.mu.Unlock()

	start := time.Now()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := a.connect(ctx, req, held)
	a.mu.Lock()
	if err != nil && held {
		// Still fail-closed: the block stays (vpn down lifts it).
		blocked.Error = fmt.Sprintf("vpn up failed (%v); still blocked: %s", err, blocked.Error)
		a.status = blocked
		a.mu.Unlock()
		a.log.Error("up from blocked failed; the block stays", "err", err)
		return a.Status(), err
	}
	if err != nil {
		a.status = control.Status{State: control.StateDown, Error: err.Error(), Server: req.Server}
		a.mu.Unlock()
		a.log.Error("up failed", "err", err)
		return a.Status(), err
	}
	now := time.Now().UTC()
	st.State, st.ConnectedAt, st.SetupMillis = control.StateUp, &now, time.Since(start).Milliseconds()
	a.status = st
	a.mu.Unlock()
	answer := time.Now()
	if p, err := control.PeerFrom(ctx); err == nil && p.UID == 0 {
		a.rememberServer(req.Server)
	}
	ans := a.Status()
	a.log.Info("tunnel up", "interface", st.Interface, "addresses", st.Addresses, "endpoint", st.Endpoint, "setup_ms", st.SetupMillis,
		"answer_ms", float64(time.Since(answer).Microseconds())/1000)
	return ans, nil
}

func (a *Agent) connect(ctx context.Context, req control.UpRequest, held bool) (st control.Status, err error) {
	start := time.Now()
	if req.Token == "" {
		return st, errors.New("no token: log in first (vpn login) or pass --token-file")
	}
	if held {
		if err := a.beginHold(); err != nil {
			return st, err
		}
		defer a.hold.Store(nil)
	}
	ph := newPhases()
	sess, err := a.newSession(req)
	if err != nil {
		return st, err
	}
	ph.mark("session")
	priv := sess.key
	if req.RotateKey {
		if priv, err = wgtypes.GeneratePrivateKey(); err != nil {
			return st, fmt.Errorf("make a new device key: %w", err)
		}
	}
	// What needs nothing from the gateway runs while it registers us
	// (prepare.go). From the block (held) the old device goes first:
	// its name may be the one asked for.
	var prep *prepJob
	if !held && a.edge.tunnelPrepare != nil {
		var name string
		if name, err = a.interfaceName(req); err != nil {
			return st, err
		}
		prep = a.startPrepare(name, req.MTU, priv)
		defer func() {
			if err != nil {
				a.abandon(prep)
			}
		}()
	}
	reg, err := sess.gw.Register(ctx, req.Token, req.Network, sess.device(priv))
	if err != nil {
		return st, registerError(req.Server, err)
	}
	ph.mark("register")
	if priv != sess.key {
		if err := key.Store(a.dir, priv); err != nil {
			return st, err
		}
		sess.key = priv
	}
	pc := reg.Config
	sess.registered(reg, a.edge.now())
	cfg, err := tunnelConfig(ctx, pc, priv)
	if err != nil {
		return st, err
	}
	cfg.PresharedKey = reg.PresharedKey
	limit := req.MaxPrefixes
	if limit <= 0 {
		limit = DefaultMaxPrefixes
	}
	if n := len(cfg.AllowedIPs); n > limit {
		return st, fmt.Errorf("the gateway pushed %d prefixes, more than the %d this client accepts: nothing installed (raise the limit with --max-prefixes if you expect that many)", n, limit)
	}
	// Capturing all traffic needs the user's consent (--all-traffic).
	var notices []string
	kept, dropped := routes.Consent(cfg.AllowedIPs, req.AllTraffic)
	if len(dropped) > 0 {
		cfg.AllowedIPs = kept
		notices = append(notices, routes.ConsentNotice(dropped))
		a.log.Warn("dropped pushed prefixes that would capture all traffic", "dropped", dropped)
	}
	ph.mark("config")
	var snap *routes.Snapshot
	if prep != nil {
		prep.wait()
		ph.add("prepare", prep.took)
		for _, s := range prep.steps {
			ph.add("prepare_"+s.Name, s.Took)
		}
		ph.add("prepare_device", prep.devTook)
		ph.mark("prepare_wait")
		if prep.err != nil {
			return st, prep.err
		}
		snap = prep.snap
	} else if snap, err = a.sys.Snapshot(); err != nil {
		return st, fmt.Errorf("read the routing state: %w", err)
	}
	if err := routes.CheckTunnelAddresses(snap, cfg.Addresses, a.heldDevice(held)); err != nil {
		return st, fmt.Errorf("gateway sent a bad peer config: %w", err)
	}
	if req.MTU > 0 {
		cfg.MTU = req.MTU
		if req.MTU < minIPv6MTU && hasIPv6(cfg.Addresses) {
			cfg.Addresses, cfg.AllowedIPs = withoutIPv6(cfg.Addresses, cfg.AllowedIPs)
			notices = append(notices, fmt.Sprintf("tunnel MTU %d is below IPv6's minimum of %d: the tunnel carries IPv4 only", req.MTU, minIPv6MTU))
		}
	}
	if prep == nil {
		if cfg.Interface, err = a.interfaceName(req); err != nil {
			return st, err
		}
	}
	ph.mark("checks")
	switch {
	case held:
		// The unreachable defaults hold the block while the old device
		// goes (its name may be the one asked for); the route session
		// (journal) goes on.
		a.mu.Lock()
		old := a.tun
		a.tun = nil
		a.mu.Unlock()
		if old != nil {
			old.Close()
		}
		defer func() {
			if err != nil {
				a.dropNewTunnel()
			}
		}()
	case prep == nil:
		if err := a.engine.Begin(); err != nil {
			return st, fmt.Errorf("prepare routes: %w", err)
		}
		defer func() {
			if err != nil {
				a.teardown()
			}
		}()
		ph.mark("begin")
	}
	var t *tunnel.Tunnel
	if prep != nil {
		prep.used = true // Up closes the device if it fails
		t, err = prep.pending.Up(cfg)
	} else {
		t, err = a.edge.tunnelUp(cfg, a.log)
	}
	if err != nil {
		return st, fmt.Errorf("create tunnel: %w", err)
	}
	ph.mark("device")
	for _, s := range t.Steps {
		ph.add("device_"+s.Name, s.Took)
	}
	a.mu.Lock()
	a.tun = t
	a.mu.Unlock()
	spec := routes.TunnelSpec{Device: t.Name, Prefixes: cfg.AllowedIPs, Addresses: cfg.Addresses, BlockLAN: req.BlockLAN, RouteLAN: req.RouteLAN, Endpoint: cfg.Endpoint.Addr()}
	if req.AllTraffic {
		spec.Prefixes = append(spec.Prefixes, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
	}
	spec.Hold = held
	a.mu.Lock()
	a.spec = spec
	a.mu.Unlock()
	if err := a.replan(); err != nil {
		return st, fmt.Errorf("install routes: %w", err)
	}
	ph.mark("routes")
	if err := awaitTraffic(ctx, a.edge.probe, t, cfg.Endpoint, cfg.Addresses, pc.Gateway.Addresses, start); err != nil {
		return st, err
	}
	ph.mark("probe")
	defer ph.log(a.log)
	pathMTU := 0
	if req.AutoMTU {
		pm, notice, err := a.autoMTU(ctx, t, cfg.Addresses, pc.Gateway.Addresses)
		if err != nil {
			return st, err
		}
		pathMTU = pm
		notices = append(notices, notice)
		ph.mark("pmtu")
	}
	dnsSt, err := a.startDNS(pc, req.AllTraffic)
	if err != nil {
		return st, fmt.Errorf("split DNS: %w", err)
	}
	if s, err := t.Stats(); err != nil || s.LastHandshake.IsZero() {
		return st, fmt.Errorf("no WireGuard handshake with %s", cfg.Endpoint)
	}
	if held {
		// The new tunnel carries traffic: lift the hold.
		a.mu.Lock()
		a.spec.Hold = false
		a.mu.Unlock()
		if err := a.replan(); err != nil {
			return st, fmt.Errorf("lift the block: %w", err)
		}
		a.hold.Store(nil)
		sess.hc.CloseIdleConnections() // no marked connection outlives the hold
		a.log.Info("left the fail-closed block: the new tunnel carries traffic", "interface", t.Name)
	}
	watchCtx, stop := context.WithCancel(context.Background())
	a.mu.Lock()
	a.stop = stop
	a.mu.Unlock()
	if err := a.edge.watch(watchCtx, 300*time.Millisecond, func() {
		a.followDNS() // first: route planning keeps the new LAN resolvers outside
		if err := a.replan(); err != nil {
			a.log.Error("re-plan routes after a network change", "err", err)
		}
	}); err != nil {
		a.log.Warn("cannot watch network changes; routes will not follow LAN changes", "err", err)
	}
	a.mu.Lock()
	a.sess = sess
	a.mu.Unlock()
	go a.renewLoop(watchCtx, sess)
	exp := pc.ExpiresAt
	var allowed []string
	for _, p := range cfg.AllowedIPs {
		allowed = append(allowed, p.String())
	}
	st = control.Status{Notices: notices, RouteLAN: req.RouteLAN, FailClosed: req.FailClosed || a.cfg.FailClosed, Server: req.Server, Network: pc.Network, User: pc.User, Email: pc.Email, PeerID: pc.PeerID,
		Interface: t.Name, Addresses: pc.Addresses, Endpoint: cfg.Endpoint.String(), GatewayPublicKey: pc.Gateway.PublicKey,
		AllowedIPs: allowed, ExpiresAt: &exp, DeviceID: sess.id, PublicKey: priv.PublicKey().String(),
		RenewAt: timePtr(sess.renewAt), TokenSource: sourceName(sess.src), GatewayVersion: pc.Gateway.Version,
		GatewayAddresses: pc.Gateway.Addresses, MTU: t.MTU, PathMTU: pathMTU, DNS: dnsSt}
	if dnsSt != nil && dnsSt.Note != "" {
		st.Notices = append(st.Notices, "DNS: "+dnsSt.Note)
	}
	ph.mark("finish") // split DNS, the handshake check, the watcher
	return st, nil
}

// interfaceName is the tunnel interface `up` makes: the one asked for,
// else CLEARPATH_INTERFACE, else the first free cpN.
func (a *Agent) interfaceName(req control.UpRequest) (string, error) {
	if req.Interface != "" {
		return req.Interface, nil
	}
	if n := envvar.Get("INTERFACE"); n != "" {
		return n, nil
	}
	return a.edge.pickName()
}

// heldDevice is the blocked tunnel's device during a switch from the block:
// its addresses are about to go with it.
func (a *Agent) heldDevice(held bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !held || a.tun == nil {
		return ""
	}
	return a.tun.Name
}

// heldEndpoint is the blocked tunnel's endpoint while a hold is on.
func (a *Agent) heldEndpoint() (netip.Addr, bool) {
	if p := a.hold.Load(); p != nil {
		return *p, true
	}
	return netip.Addr{}, false
}

// beginHold starts the switch from the fail-closed block to a new session:
// the old session's watcher stops, the unreachable defaults of
// TunnelSpec.Hold join its routes (so the block outlives its device), and
// the agent's own connections to the blocked tunnel's endpoint skip the
// block (markControl) to register.
func (a *Agent) beginHold() error {
	a.mu.Lock()
	stop := a.stop
	a.stop, a.sess = nil, nil
	a.spec.Hold = true
	ep := a.spec.Endpoint
	active := a.tun != nil
	a.mu.Unlock()
	if stop != nil {
		stop()
	}
	if !a.engine.Active() {
		return errors.New("blocked, but no route session is active: run `vpn down`, then `vpn up`")
	}
	if ep.IsValid() {
		a.hold.Store(&ep)
	}
	if !active {
		return nil // an earlier switch failed: its holds are in place
	}
	if err := a.replan(); err != nil {
		return fmt.Errorf("hold the block: %w", err)
	}
	return nil
}

// dropNewTunnel undoes a failed switch from the block: the new device goes
// (and its routes with it), the holds stay; the state stays blocked.
func (a *Agent) dropNewTunnel() {
	a.mu.Lock()
	t := a.tun
	a.tun = nil
	if a.stop != nil {
		a.stop()
		a.stop = nil
	}
	a.sess = nil
	a.mu.Unlock()
	if t != nil {
		t.Close()
	}
}

// replan computes the tunnel's routes and rules from the machine's current
// state and reconciles the kernel to them (through the journal).
func (a *Agent) replan() error {
	a.mu.Lock()
	spec := a.spec
	active := a.tun != nil
	a.mu.Unlock()
	if !active {
		return nil
	}
	snap, err := a.sys.Snapshot()
	if err != nil {
		return err
	}
	spec.Resolvers = a.resolvers()
	a.mu.Lock()
	if a.tun != nil {
		a.spec.Resolvers = spec.Resolvers // status names the resolver decisions too
	}
	a.mu.Unlock()
	added, removed, err := a.engine.ReconcileFrom(snap, benchPlan(routes.PlanTunnel(snap, spec)))
	if len(added)+len(removed) > 0 {
		a.log.Info("routes reconciled", "added", len(added), "removed", len(removed))
	}
	return err
}

// probePairs pairs each of the gateway's tunnel addresses (unparsable ones
// skipped) with our first address of its family, as (source, destination):
// what the first-reply probe and the path MTU probe send between.
func probePairs(ours []netip.Prefix, gateway []string) [][2]netip.Addr {
	var pairs [][2]netip.Addr
	for _, g := range gateway {
		dst, err := netip.ParseAddr(g)
		if err != nil {
			continue
		}
		for _, src := range ours {
			if src.Addr().Is4() == dst.Is4() {
				pairs = append(pairs, [2]netip.Addr{src.Addr(), dst})
				break
			}
		}
	}
	return pairs
}

// probeAll pings the gateway's tunnel address of each family we have an
// address in, so `up` proves IPv4 and IPv6 both cross. The families are
// probed at once: `up` waits for the slower, not for both in a row.
func probeAll(ctx context.Context, probe func(ctx context.Context, src, dst netip.Addr) error, ours []netip.Prefix, gateway []string) error {
	pairs := probePairs(ours, gateway)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(pairs))
	for _, p := range pairs {
		go func() { errs <- probe(ctx, p[0], p[1]) }()
	}
	var first error
	for range pairs {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // one family failed: so did up
		}
	}
	return first
}

func tunnelConfig(ctx context.Context, pc *api.PeerConfig, priv wgtypes.Key) (tunnel.Config, error) {
	cfg := tunnel.Config{PrivateKey: priv, MTU: pc.MTU, FwMark: benchFwMark(routes.FwMark), Keepalive: pc.PersistentKeepalive}
	var err error
	if cfg.PeerKey, err = wgtypes.ParseKey(pc.Gateway.PublicKey); err != nil {
		return cfg, fmt.Errorf("gateway public key: %w", err)
	}
	ep, err := gwapi.ParseEndpoint(pc.Gateway.Endpoint)
	if err != nil {
		return cfg, fmt.Errorf("gateway endpoint: %w", err)
	}
	if cfg.Endpoint, err = tunnel.ResolveEndpoint(ctx, ep.Host, ep.Port, gwapi.CheckEndpointAddr); err != nil {
		return cfg, err
	}
	if cfg.Addresses, err = gwapi.TunnelAddresses(pc.Addresses); err != nil {
		return cfg, err
	}
	for _, s := range pc.Gateway.AllowedIPs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("allowed IP %q: %w", s, err)
		}
		cfg.AllowedIPs = append(cfg.AllowedIPs, p.Masked())
	}
	return cfg, nil
}

// Down implements control.Handler.
func (a *Agent) Down(ctx context.Context) (control.Status, error) {
	rep := a.teardown()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status = control.Status{State: control.StateDown}
	if rep != nil && len(rep.Problems) > 0 {
		a.status.Error = fmt.Sprint("restore: ", rep.Problems)
	}
	return a.status, nil
}

// Restore implements control.Restorer: with no session, it restores the
// routing table as the agent's start does (the journal replayed in
// reverse, every route and rule of ours swept), for the tray's "Restore
// routes" and whoever finds leftovers while the agent idles. A session
// (connecting, up, or the fail-closed block) is refused: its routes are
// `down`'s to restore. The agent's lock on its state dir keeps anything
// else off the journal meanwhile; holding mu keeps an `up` from starting.
func (a *Agent) Restore(ctx context.Context) (control.RestoreReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tun != nil || a.status.State != control.StateDown {
		return control.RestoreReport{}, fmt.Errorf("restore while %s: %w", a.status.State, control.ErrSessionActive)
	}
	rep, err := a.engine.Recover()
	if err != nil {
		return control.RestoreReport{}, fmt.Errorf("restore routes: %w", err)
	}
	if !rep.Empty() {
		a.log.Warn("restored routes on request", "undone", len(rep.Undone), "swept", len(rep.Swept), "problems", rep.Problems)
	}
	return control.RestoreReport{Undone: len(rep.Undone), Swept: len(rep.Swept), Problems: rep.Problems}, nil
}

// teardown closes the tunnel and restores the routes from the journal.
func (a *Agent) teardown() *routes.Report {
	a.mu.Lock()
	t := a.tun
	a.tun = nil
	a.sess = nil
	if a.stop != nil {
		a.stop()
		a.stop = nil
	}
	a.mu.Unlock()
	if t != nil {
		t.Close()
	}
	dnsMsg := a.stopDNS()
	if !a.engine.Active() {
		if dnsMsg != "" {
			return &routes.Report{Problems: []string{dnsMsg}}
		}
		return nil
	}
	rep, err := a.engine.End()
	if dnsMsg != "" && rep != nil {
		rep.Problems = append(rep.Problems, dnsMsg)
	}
	if err != nil {
		a.log.Error("restore routes", "err", err)
	} else if len(rep.Problems) > 0 {
		a.log.Warn("restore routes", "problems", rep.Problems)
	}
	return rep
}

// Running reports whether an agent holds dir's lock (it runs, even if its
// socket does not answer) and its pid when the pid file says. known is
// false when the lock cannot be checked (no permission).
func Running(dir string) (pid int, running, known bool) {
	f, err := statedir.OpenFile(dir, "agent.lock", os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, true
	}
	if err != nil {
		return 0, false, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, false, true
	}
	if b, err := statedir.ReadFile(filepath.Join(dir, "agent.pid")); err == nil {
		fmt.Sscan(string(b), &pid)
	}
	return pid, true, true
}
