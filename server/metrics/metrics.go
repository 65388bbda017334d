// Package metrics exposes the gateway's Prometheus metrics: peers and their
// handshakes and bytes (read from the devices at scrape time), and counters
// of registrations, lifecycle events, webhook deliveries, reloads and errors.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PeerSample is one peer as a device reports it, with who it belongs to.
type PeerSample struct {
	Network, User, PeerID string
	LastHandshake         time.Time
	Rx, Tx                int64
}

// Source lists the running networks and their peers at scrape time.
type Source interface {
	MetricNetworks() []string
	MetricPeers() []PeerSample
	// MetricStoreUp reports whether the last read of the store worked.
	MetricStoreUp() bool
}

// Metrics holds the gateway's collectors.
type Metrics struct {
	Registry      *prometheus.Registry
	Registrations *prometheus.CounterVec // result
	Requests      *prometheus.CounterVec // handler, code
	Events        *prometheus.CounterVec // kind
	Audit         *prometheus.CounterVec // action
	Webhook       *prometheus.CounterVec // result
	Reloads       *prometheus.CounterVec // result
	Errors        *prometheus.CounterVec // kind
	// Refused counts what the API's abuse limits turned away.
	Refused        *prometheus.CounterVec // reason
	ExpiryLateness prometheus.Histogram
}

// ConnectedWithin is how recent a handshake must be for a peer to count
// as connected (WireGuard re-handshakes every two minutes while traffic
// flows).
const ConnectedWithin = 3 * time.Minute

// New registers every collector; src feeds the peer metrics.
func New(src Source) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_registrations_total",
			Help: "Registration requests (POST /api/v1/peers) by result: ok, bad_request, unauthorized, forbidden, conflict, pool_exhausted, rate_limited, unavailable, error."}, []string{"result"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_api_requests_total",
			Help: "API requests by handler and HTTP status code."}, []string{"handler", "code"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_lifecycle_events_total",
			Help: "Key lifecycle events: expiring, unused, idle (warnings), expired, revoked."}, []string{"kind"}),
		Audit: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_audit_entries_total",
			Help: "Audit log entries by action."}, []string{"action"}),
		Webhook: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_webhook_deliveries_total",
			Help: "Webhook events delivered or given up on."}, []string{"result"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_config_reloads_total",
			Help: "Configuration reloads by result (ok, failed)."}, []string{"result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_errors_total",
			Help: "Errors by kind: store, device, api (5xx answers), webhook, reload."}, []string{"kind"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clearpath_api_refused_total",
			Help: "Connections and requests the API's limits refused, by reason: conns_per_source, conns_total, rate_user, rate_source, token_too_large."}, []string{"reason"}),
		ExpiryLateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "clearpath_expiry_lateness_seconds",
			Help: "How long after its deadline an expired key left the device.", Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30}}),
	}
	r.MustRegister(m.Registrations, m.Requests, m.Events, m.Audit, m.Webhook, m.Reloads, m.Errors, m.Refused, m.ExpiryLateness,
		&peerCollector{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Counters that exist before their first increment read 0, not absent.
	for _, res := range []string{"ok", "bad_request", "unauthorized", "forbidden", "conflict", "pool_exhausted", "rate_limited", "unavailable", "error"} {
		m.Registrations.WithLabelValues(res)
	}
	for _, k := range []string{"store", "device", "api", "webhook", "reload"} {
		m.Errors.WithLabelValues(k)
	}
	for _, k := range []string{"conns_per_source", "conns_total", "rate_user", "rate_source", "token_too_large"} {
		m.Refused.WithLabelValues(k)
	}
	for _, k := range []string{"expiring", "unused", "idle", "expired", "revoked"} {
		m.Events.WithLabelValues(k)
	}
	return m
}

// Handler serves /metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorLog: nil})
}

// RegistrationResult names the result label of an HTTP status.
func RegistrationResult(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "ok"
	case code == http.StatusBadRequest:
		return "bad_request"
	case code == http.StatusUnauthorized:
		return "unauthorized"
	case code == http.StatusForbidden:
		return "forbidden"
	case code == http.StatusConflict:
		return "conflict"
	case code == http.StatusTooManyRequests:
		return "rate_limited"
	case code == http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "error"
}

// Code formats an HTTP status for the code label.
func Code(code int) string { return strconv.Itoa(code) }

var (
	descNetworks  = prometheus.NewDesc("clearpath_networks", "Networks running on this gateway.", nil, nil)
	descPeers     = prometheus.NewDesc("clearpath_peers", "Registered peers of the network (its device holds the active ones).", []string{"network"}, nil)
	descConnected = prometheus.NewDesc("clearpath_peers_connected", "Peers with a handshake in the last 3 minutes.", []string{"network"}, nil)
	descHandshake = prometheus.NewDesc("clearpath_peer_last_handshake_seconds", "Unix time of the peer's last handshake (0: never).", []string{"network", "user", "peer_id"}, nil)
	descRx        = prometheus.NewDesc("clearpath_peer_receive_bytes_total", "Bytes received from the peer.", []string{"network", "user", "peer_id"}, nil)
	descTx        = prometheus.NewDesc("clearpath_peer_transmit_bytes_total", "Bytes sent to the peer.", []string{"network", "user", "peer_id"}, nil)
	descStoreUp   = prometheus.NewDesc("clearpath_store_up", "1 if the last read of the store succeeded.", nil, nil)
)

type peerCollector struct{ src Source }

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNetworks, descPeers, descConnected, descHandshake, descRx, descTx, descStoreUp} {
		ch <- d
	}
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.src.MetricStoreUp() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, up)
	nets := c.src.MetricNetworks()
	ch <- prometheus.MustNewConstMetric(descNetworks, prometheus.GaugeValue, float64(len(nets)))
	peers, connected := map[string]int{}, map[string]int{}
	for _, n := range nets {
		peers[n], connected[n] = 0, 0
	}
	now := time.Now()
	for _, p := range c.src.MetricPeers() {
		peers[p.Network]++
		hs := 0.0
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.Unix())
			if now.Sub(p.LastHandshake) < ConnectedWithin {
				connected[p.Network]++
			}
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, hs, p.Network, p.User, p.PeerID)
		ch <- prometheus.MustNewConstMetric(descRx, prometheus.CounterValue, float64(p.Rx), p.Network, p.User, p.PeerID)
		ch <- prometheus.MustNewConstMetric(descTx, prometheus.CounterValue, float64(p.Tx), p.Network, p.User, p.PeerID)
	}
	for n, v := range peers {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(v), n)
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, float64(connected[n]), n)
	}
}
