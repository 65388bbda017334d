package gateway

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/metrics"
)

// PathMetrics serves the Prometheus metrics.
const PathMetrics = "/metrics"

// frontHandler wraps the API: each request's RemoteAddr becomes the client's
// address (X-Forwarded-For from trusted proxies), each request sees one
// configuration (reloads wait for requests in flight), is counted in the
// metrics, and /healthz and (with metricsToken only) /metrics are answered
// here.
func (g *Gateway) frontHandler(apiHandler http.Handler, metricsToken string) http.Handler {
	mh := g.metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer := remoteAddr(r.RemoteAddr); g.guard != nil && peer.IsValid() {
			if client := g.guard.proxies.clientAddr(peer, r.Header.Values("X-Forwarded-For")); client != peer {
				r.RemoteAddr = client.String()
			}
		}
		switch {
		case r.URL.Path == api.PathHealth && r.Method == http.MethodGet:
			g.healthz(w, r)
			return
		case r.URL.Path == PathMetrics && metricsToken != "":
			// Only with the token: /metrics names every user.
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(metricsToken)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				writeErr(w, http.StatusUnauthorized, api.ErrInvalidToken, "/metrics on the API address needs Authorization: Bearer <metrics_token>")
				return
			}
			mh.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		g.reloadMu.RLock()
		apiHandler.ServeHTTP(rec, r)
		g.reloadMu.RUnlock()
		handler := "other"
		switch r.URL.Path {
		case api.PathPeers:
			handler = "peers"
			if r.Method == http.MethodPost {
				res := metrics.RegistrationResult(rec.code)
				if strings.Contains(string(rec.head), `"error":"`+api.ErrPoolExhausted+`"`) {
					res = "pool_exhausted"
				}
				g.metrics.Registrations.WithLabelValues(res).Inc()
			}
		case api.PathPeerSelf:
			handler = "peers_self"
		case api.PathDiscovery:
			handler = "discovery"
		}
		g.metrics.Requests.WithLabelValues(handler, metrics.Code(rec.code)).Inc()
		if rec.code >= 500 && rec.code != http.StatusServiceUnavailable {
			g.metrics.Errors.WithLabelValues("api").Inc()
		}
	})
}

// metricsMux serves /metrics and /healthz on metrics_listen.
func (g *Gateway) metricsMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, g.metrics.Handler())
	mux.HandleFunc("GET "+api.PathHealth, g.healthz)
	return mux
}

// statusRecorder keeps the status and, for errors, the start of the body
// (the JSON error code).
type statusRecorder struct {
	http.ResponseWriter
	code int
	head []byte
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code >= 400 && len(s.head) < 256 {
		s.head = append(s.head, b[:min(len(b), 256-len(s.head))]...)
	}
	return s.ResponseWriter.Write(b)
}

// Health is the JSON body of /healthz.
type Health struct {
	Status string            `json:"status"` // "ok" or "unhealthy"
	Checks map[string]string `json:"checks"` // each "ok" or what is wrong
}

// healthz answers 200 when the identity provider was discovered, the store
// answered recently and every configured network's device exists; 503 and
// the failing checks otherwise.
func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Checks: map[string]string{}}
	fail := func(k, v string) {
		h.Checks[k] = v
		h.Status = "unhealthy"
	}
	if g.verifier.Ready() {
		h.Checks["identity_provider"] = "ok"
	} else {
		msg := "not reachable yet"
		if err := g.verifier.LastError(); err != nil {
			msg += ": " + err.Error()
		}
		fail("identity_provider", msg)
	}
	if last, err := g.life.StoreStatus(); err != nil {
		fail("store", "unreachable since about "+time.Since(last).Round(time.Second).String()+": "+err.Error())
	} else {
		h.Checks["store"] = "ok"
	}
	g.reloadMu.RLock()
	for _, n := range g.cfg.Networks {
		g.wgMu.Lock()
		_, err := g.wg.Device(n.Interface)
		g.wgMu.Unlock()
		if err != nil {
			fail("network "+n.Name, "device "+n.Interface+": "+err.Error())
		} else {
			h.Checks["network "+n.Name] = "ok"
		}
	}
	g.reloadMu.RUnlock()
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}
