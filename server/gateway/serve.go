package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/server/audit"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/certs"
	"github.com/clearpath-vpn/clearpath/server/hostguard"
	"github.com/clearpath-vpn/clearpath/server/lifecycle"
	"github.com/clearpath-vpn/clearpath/server/metrics"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Serve starts everything described by o.Config and serves until ctx is
// done, then removes what it installed and returns.
//
// The start is a sequence of steps (docs/ARCHITECTURE.md, gateway start
// sequence), each registering its undo: a step that fails undoes exactly
// the steps before it, newest first, and the error names what failed;
// the stop is the same unwind.
func Serve(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if err := checkSecretFiles(cfg); err != nil {
		return err
	}
	s := newSteps(log, o.Hooks.step())
	defer s.unwind()

	nsLock := NetnsLockName
	if o.Hooks != nil && o.Hooks.NetnsLock != "" {
		nsLock = o.Hooks.NetnsLock
	}
	lock, err := acquireLock(cfg.StateDir, nsLock)
	if err != nil {
		return err
	}
	s.did("instance lock", lock.release)

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	s.did("store", func() { st.Close() })
	st.SetAllocationGrace(cfg.AllocationGrace)
	host, _ := os.Hostname()
	if o.ConfigPath != "" {
		if abs, err := filepath.Abs(o.ConfigPath); err == nil {
			o.ConfigPath = abs
		}
	}
	g := &Gateway{cfg: cfg, store: st, log: log, now: time.Now, networks: map[string]*network{}, configPath: o.ConfigPath, host: host, logins: newTokenSeen(), hooks: o.Hooks, deps: o.deps}
	if g.deps == nil {
		g.deps = hostDeps()
	}
	g.verifier = auth.New(ctx, cfg.OIDC.Issuer, cfg.OIDC.Audience, cfg.OIDC.GroupsClaim, log)
	g.verifier.SetRequireEmailVerified(cfg.OIDC.EmailVerifiedRequired())
	g.metrics = metrics.New(g)
	g.audit = audit.New(st, log)
	g.audit.OnRecord = func(r store.AuditRecord) { g.metrics.Audit.WithLabelValues(r.Action).Inc() }
	g.setWebhook(cfg.Lifecycle.Webhook)
	g.life = lifecycle.New(lifecycle.Options{Store: st, Devices: g, Log: log, Settings: settingsOf(cfg), Notify: g.onLifecycleEvent})
	g.life.OnStoreError = func(error) { g.metrics.Errors.WithLabelValues("store").Inc() }
	g.life.AfterSync = func(ctx context.Context) {
		if g.audit.Pending() > 0 {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			g.audit.Flush(sctx)
			cancel()
		}
	}

	ln, apiURL, acmeLn, metricsLn, err := g.listen(s)
	if err != nil {
		return err
	}

	// Network set-up: nothing of the host's routing is touched before here.
	if err := g.startNetworks(ctx, s); err != nil {
		g.metrics.Errors.WithLabelValues("device").Inc()
		return err
	}

	admin, err := g.listenAdmin(cfg.AdminSocket)
	if err != nil {
		return err
	}
	s.did("admin socket", func() { admin.Close() })

	// Admin web page hook (adminweb.go): its own listener on admin_listen.
	stopWeb, err := g.startAdminWeb(ctx)
	if err != nil {
		return err
	}
	s.did("admin page", stopWeb)

	lifeCtx, stopLife := context.WithCancel(context.Background())
	srv := apiServer(g.frontHandler(g.Handler(), cfg.MetricsToken), cfg.API, log)
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if metricsLn != nil {
		msrv = apiServer(g.metricsMux(), cfg.API, log)
		go func() { errc <- msrv.Serve(metricsLn) }()
		log.Info("metrics serving", "metrics_listen", metricsLn.Addr().String())
	}
	acmeCtx, stopACME := context.WithCancel(ctx)
	if acmeLn != nil {
		go func() {
			if err := g.certs.ServeHTTPChallenges(acmeCtx, acmeLn); err != nil {
				log.Error("ACME HTTP-01 listener stopped", "err", err)
			}
		}()
	}
	asrv := g.adminServer()
	go asrv.Serve(admin)
	lifeDone := make(chan struct{})
	go func() { g.life.Run(lifeCtx); close(lifeDone) }()
	trimDone := make(chan struct{})
	go func() { g.trimLoop(lifeCtx); close(trimDone) }()
	s.did("serving", func() {
		log.Info("shutting down")
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
		if msrv != nil {
			msrv.Shutdown(shutCtx)
		}
		asrv.Shutdown(shutCtx)
		stopACME()
		stopLife()
		<-lifeDone
		<-trimDone
		g.audit.Record(shutCtx, store.AuditRecord{Actor: "gateway", Action: audit.Stop, Remote: g.host})
		g.webhook().Close(2 * time.Second)
	})

	g.audit.Record(ctx, store.AuditRecord{Actor: "gateway", Action: audit.Start, Remote: g.host, Detail: "networks " + strings.Join(networkNames(cfg), ", ")})
	log.Info("gateway serving", "listen", ln.Addr().String(), "url", apiURL, "networks", len(cfg.Networks), "admin_socket", cfg.AdminSocket)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.Reload:
			res, err := g.Reload(ctx, "SIGHUP", "signal")
			if err != nil {
				log.Error("reload failed; the running configuration is unchanged", "err", err)
			} else {
				log.Info("configuration reloaded", "changes", res.Summary())
			}
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		}
	}
}

// listen opens the API listener (TLS over the connection cap), the ACME
// HTTP-01 and metrics listeners when configured.
func (g *Gateway) listen(s *steps) (ln net.Listener, apiURL string, acmeLn, metricsLn net.Listener, err error) {
	cfg, log := g.cfg, g.log
	g.guard = newGuards(cfg.API, cfg.TrustedProxies, log)
	capped, err := g.listenAPI(cfg)
	if err != nil {
		return nil, "", nil, nil, err
	}
	s.did("API listener", func() { capped.Close() })
	// TLS wraps the capped listener, so a refused connection never costs a
	// handshake.
	ln = capped
	apiURL = "http://" + ln.Addr().String()
	if cfg.TLS.Enabled() {
		if g.certs, err = certs.New(cfg.TLS, log, certs.Options{}); err != nil {
			return nil, "", nil, nil, err
		}
		ln = tls.NewListener(ln, g.certs.TLSConfig())
		apiURL = "https://" + ln.Addr().String()
		if g.certs.Mode() == "acme" {
			log.Info("TLS certificates from ACME", "domains", cfg.TLS.ACME.Domains, "directory", cfg.TLS.ACME.DirectoryURL, "cache_dir", cfg.TLS.ACME.CacheDir)
		} else {
			log.Info("TLS certificate loaded", "cert", cfg.TLS.Cert, "certificate", certs.Describe(g.certs.Leaf()))
		}
	} else {
		log.Warn("the API serves plain HTTP: clients refuse it (tokens would travel in clear) unless given --allow-http; add a tls block to the configuration or put an HTTPS proxy in front")
	}
	if g.certs != nil && cfg.TLS.ACME != nil && cfg.TLS.ACME.HTTPListen != "" {
		if acmeLn, err = net.Listen("tcp", cfg.TLS.ACME.HTTPListen); err != nil {
			return nil, "", nil, nil, fmt.Errorf("tls.acme.http_listen %s: %w", cfg.TLS.ACME.HTTPListen, err)
		}
		s.did("ACME listener", func() { acmeLn.Close() })
	}
	if addr := cfg.MetricsAddr(); addr != "" {
		if metricsLn, err = net.Listen("tcp", addr); err != nil {
			return nil, "", nil, nil, fmt.Errorf("metrics_listen %s: %w (set metrics_listen to a free address, or off)", addr, err)
		}
		s.did("metrics listener", func() { metricsLn.Close() })
	}
	return ln, apiURL, acmeLn, metricsLn, nil
}

// startNetworks is the network part of the start, in order: refuse tables
// holding routes the gateway does not own; open the route session
// (recovering what a killed gateway left); forwarding on; the host guard;
// wgctrl; the flow filter; each network's device; the policy of all
// networks. Each step registers its undo on s.
func (g *Gateway) startNetworks(ctx context.Context, s *steps) error {
	cfg, log := g.cfg, g.log
	sys, err := g.deps.sys()
	if err != nil {
		return err
	}
	g.net = newHostNet(sys, cfg.StateDir, log)
	if g.hooks != nil {
		g.net.eng.SetHooks(g.hooks.Routes)
	}
	if err := g.net.checkTables(cfg.Networks); err != nil {
		return fmt.Errorf("%w; nothing was changed", err)
	}
	if err := g.net.begin(); err != nil {
		return err
	}
	s.did("route session", g.net.end)
	if err := g.net.enableForwarding(); err != nil {
		return err
	}
	s.did("forwarding", nil) // undone with the route session
	log.Info("forwarding on (IPv4 and IPv6, no NAT)")
	if err := g.guardHost(hostguard.FromConfig(cfg)); err != nil {
		return err
	}
	s.did("host guard", func() { g.deps.guard.Remove(log) })
	log.Info("gateway host closed to the tunnels", "nftables", "inet "+hostguard.TableName)
	if g.wg, err = g.deps.wg(); err != nil {
		return fmt.Errorf("open wgctrl: %w", err)
	}
	s.did("wgctrl", func() { g.wg.Close() })
	if g.flows, err = g.startFlows(cfg.Flows); err != nil {
		return err
	}
	s.did("flow filter", g.flows.close)
	// One undo for the devices: at stop it closes those running then (a
	// reload may have added, removed or recreated some); after a failed
	// start, those started so far.
	s.did("devices", g.closeNetworks)
	for i, n := range cfg.Networks {
		nw, peers, err := g.bringUp(ctx, n)
		if err != nil {
			return fmt.Errorf("networks[%d] (%s): %w; nothing is left set up", i, n.Name, err)
		}
		g.mu.Lock()
		g.networks[n.Name] = nw
		g.mu.Unlock()
		g.life.AddNetwork(ctx, n.Name, peers)
		s.did("network "+n.Name, nil)
	}
	// At stop the flow filter writes its last flows before the devices go.
	s.did("flow log", g.flows.close)
	if err := g.net.reconcile(cfg.Networks); err != nil {
		return fmt.Errorf("%w; nothing is left set up", err)
	}
	s.did("network policy", nil) // undone with the route session
	return nil
}
