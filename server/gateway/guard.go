package gateway

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// MaxTokenBytes bounds a bearer token: longer ones are refused before any
// verification (a real ID or access token is a few KB at most).
const MaxTokenBytes = 8 << 10

// sourceKey is what per-source limits count: the address, or its /64 for
// IPv6 (one host holds a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// remoteAddr parses an http.Request's RemoteAddr ("ip:port", or a bare IP
// once clientAddr has replaced it).
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// proxies is the trusted_proxies list.
type proxies []netip.Prefix

func (p proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request comes from: the direct peer, unless
// the peer is a trusted proxy; then the rightmost X-Forwarded-For hop that
// is not a trusted proxy (hops left of it were written by the client and
// prove nothing). An unparsable hop ends the walk at the last trusted one.
func (p proxies) clientAddr(peer netip.Addr, xff []string) netip.Addr {
	if !p.trusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !p.trusted(client) {
			return client
		}
	}
	return client
}

// connLimiter closes, as soon as they are accepted, connections beyond
// perSource open ones from one source address (trusted proxies are not
// counted) or beyond total open ones in all. What it holds for a refused
// connection is nothing: the descriptor is closed before Accept returns.
type connLimiter struct {
	net.Listener
	perSource, total int
	exempt           func(netip.Addr) bool
	onRefuse         func(reason string, src netip.Addr)

	mu   sync.Mutex
	open map[netip.Addr]int
	all  int
}

func newConnLimiter(ln net.Listener, perSource, total int, exempt func(netip.Addr) bool, onRefuse func(string, netip.Addr)) *connLimiter {
	return &connLimiter{Listener: ln, perSource: perSource, total: total, exempt: exempt, onRefuse: onRefuse, open: map[netip.Addr]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteAddr(c.RemoteAddr().String())
		key, counted := sourceKey(src), !l.exempt(src)
		reason := ""
		l.mu.Lock()
		switch {
		case l.all >= l.total:
			reason = "conns_total"
		case counted && l.open[key] >= l.perSource:
			reason = "conns_per_source"
		default:
			l.all++
			if counted {
				l.open[key]++
			}
		}
		l.mu.Unlock()
		if reason == "" {
			return &limitedConn{Conn: c, release: func() { l.release(key, counted) }}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: no FIN_WAIT state kept for the abuser
		}
		c.Close()
		if l.onRefuse != nil {
			l.onRefuse(reason, src)
		}
	}
}

func (l *connLimiter) release(key netip.Addr, counted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all--
	if counted {
		if l.open[key]--; l.open[key] <= 0 {
			delete(l.open, key)
		}
	}
}

// openConns returns the connections held in all and from src's key.
func (l *connLimiter) openConns(src netip.Addr) (all, fromSrc int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all, l.open[sourceKey(src)]
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// buckets is one token bucket per key (a subject, a source address),
// refilled at r. Buckets idle long enough to be full again are forgotten:
// a new one is the same.
type buckets struct {
	r    config.Rate
	mu   sync.Mutex
	m    map[string]*bucket
	swep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(r config.Rate) *buckets { return &buckets{r: r, m: map[string]*bucket{}} }

// take spends one token of key's bucket; when there is none it spends
// nothing and says how long until one is back.
func (b *buckets) take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if b == nil || b.r.Off() {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.m) > 4096 && now.Sub(b.swep) > b.r.Per {
		for k, e := range b.m {
			if now.Sub(e.last) > b.r.Per {
				delete(b.m, k)
			}
		}
		b.swep = now
	}
	e := b.m[key]
	if e == nil {
		e = &bucket{lim: rate.NewLimiter(rate.Every(b.r.Interval()), b.r.Burst)}
		b.m[key] = e
	}
	e.last = now
	res := e.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// guards are the API's per-request limits, fixed at start.
type guards struct {
	proxies proxies
	user    *buckets
	source  *buckets
	log     *slog.Logger
}

func newGuards(c config.API, trusted []netip.Prefix, log *slog.Logger) *guards {
	return &guards{proxies: trusted, user: newBuckets(c.UserRate()), source: newBuckets(c.SourceRate()), log: log}
}

// tooMany answers 429 with Retry-After (whole seconds, rounded up).
func tooMany(w http.ResponseWriter, what string, retry time.Duration) {
	secs := int((retry + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeErr(w, http.StatusTooManyRequests, api.ErrRateLimited, fmt.Sprintf("too many registrations %s; retry in %ds", what, secs))
}

// apiServer is the public API's http.Server with the timeouts and header
// bound of c.
func apiServer(h http.Handler, c config.API, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// listenAPI listens on cfg.Listen behind the connection caps. Refusals are
// counted in clearpath_api_refused_total and logged at most every 10s.
func (g *Gateway) listenAPI(cfg *config.Config) (*connLimiter, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	var mu sync.Mutex
	var lastLog time.Time
	refused := map[string]int{}
	onRefuse := func(reason string, src netip.Addr) {
		g.metrics.Refused.WithLabelValues(reason).Inc()
		mu.Lock()
		defer mu.Unlock()
		refused[reason]++
		if now := time.Now(); now.Sub(lastLog) >= 10*time.Second {
			g.log.Warn("API connections refused", "reason", reason, "last_source", src, "count_by_reason", fmt.Sprint(refused),
				"max_conns_per_source", cfg.API.MaxConnsPerSource, "max_conns", cfg.API.MaxConns)
			lastLog = now
			clear(refused)
		}
	}
	return newConnLimiter(ln, cfg.API.MaxConnsPerSource, cfg.API.MaxConns, proxies(cfg.TrustedProxies).trusted, onRefuse), nil
}
