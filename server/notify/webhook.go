// Package notify delivers the gateway's lifecycle events (a key about to
// expire, never used, idle, expired, revoked) to a webhook: a JSON POST per
// event, retried with exponential backoff until the receiver answers 2xx,
// optionally signed with HMAC-SHA256.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/clearpath-vpn/clearpath/server/config"
)

// Event kinds, as the "event" field says them.
const (
	PeerExpiring = "peer.expiring"
	PeerUnused   = "peer.unused"
	PeerIdle     = "peer.idle"
	PeerExpired  = "peer.expired"
	PeerRevoked  = "peer.revoked"
)

// Event is the JSON body of one webhook delivery.
type Event struct {
	Event string    `json:"event"`
	ID    string    `json:"id"` // the same on every retry: receivers can drop duplicates
	Time  time.Time `json:"time"`
	// Gateway is the host name of the gateway that sent it.
	Gateway   string   `json:"gateway,omitempty"`
	User      string   `json:"user"`
	Email     string   `json:"email,omitempty"`
	Network   string   `json:"network"`
	PeerID    string   `json:"peer_id"`
	Hostname  string   `json:"hostname,omitempty"`
	PublicKey string   `json:"public_key,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	// ExpiresAt is when the key expires (expired, for peer.expired).
	ExpiresAt     time.Time  `json:"expires_at"`
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	// Lead is how long before expiry a peer.expiring warning was due ("24h0m0s").
	Lead string `json:"lead,omitempty"`
	// Reason says why a key was revoked.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// Result reports the outcome of one event's delivery.
type Result struct {
	Event    Event
	Attempts int
	Err      error // nil when delivered
}

// Webhook sends events to one URL. A zero URL makes Send a no-op.
type Webhook struct {
	cfg    config.Webhook
	client *http.Client
	log    *slog.Logger
	// OnResult, if set, is called once per event when it was delivered or
	// given up on (metrics).
	OnResult func(Result)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
}

// New returns a webhook sender for cfg.
func New(cfg config.Webhook, log *slog.Logger) *Webhook {
	ctx, cancel := context.WithCancel(context.Background())
	return &Webhook{cfg: cfg, client: httpClient(cfg.Timeout), log: log, ctx: ctx, cancel: cancel, sem: make(chan struct{}, 16)}
}

// httpClient bounds every phase of an attempt: a receiver that accepts and
// never answers costs one timeout, and its headers cannot grow without end.
func httpClient(timeout time.Duration) *http.Client {
	step := min(timeout, 5*time.Second)
	if step <= 0 {
		step = 5 * time.Second
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            (&net.Dialer{Timeout: step, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    step,
			ResponseHeaderTimeout:  timeout,
			MaxResponseHeaderBytes: 64 << 10,
			IdleConnTimeout:        90 * time.Second,
			MaxIdleConnsPerHost:    4,
		},
	}
}

// Enabled reports whether a URL is configured.
func (w *Webhook) Enabled() bool { return w != nil && w.cfg.URL != "" }

// Send delivers e in the background, retrying as configured.
func (w *Webhook) Send(e Event) {
	if !w.Enabled() {
		return
	}
	if e.ID == "" {
		b := make([]byte, 8)
		rand.Read(b)
		e.ID = hex.EncodeToString(b)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		select {
		case w.sem <- struct{}{}:
		case <-w.ctx.Done():
			return
		}
		defer func() { <-w.sem }()
		n, err := w.deliver(e)
		if err != nil {
			w.log.Error("webhook: giving up", "event", e.Event, "id", e.ID, "peer", e.PeerID, "attempts", n, "err", err)
		} else {
			w.log.Info("webhook delivered", "event", e.Event, "id", e.ID, "peer", e.PeerID, "attempts", n)
		}
		if w.OnResult != nil {
			w.OnResult(Result{Event: e, Attempts: n, Err: err})
		}
	}()
}

// Close waits up to grace for deliveries in flight, then abandons them.
func (w *Webhook) Close(grace time.Duration) {
	if w == nil {
		return
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
	}
	w.cancel()
	<-done
}

// deliver posts e until it is accepted, a permanent error, or attempts run out.
func (w *Webhook) deliver(e Event) (int, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	delay := w.cfg.Backoff
	var last error
	for attempt := 1; attempt <= w.cfg.MaxAttempts; attempt++ {
		retryAfter, permanent, err := w.post(e, body, attempt)
		if err == nil {
			return attempt, nil
		}
		last = err
		if permanent {
			return attempt, err
		}
		if attempt == w.cfg.MaxAttempts {
			break
		}
		wait := jitter(delay)
		if retryAfter > wait {
			wait = min(retryAfter, time.Minute)
		}
		w.log.Warn("webhook attempt failed, retrying", "event", e.Event, "id", e.ID, "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-time.After(wait):
		case <-w.ctx.Done():
			return attempt, fmt.Errorf("gateway shutting down: %w", last)
		}
		delay = min(delay*2, time.Minute)
	}
	return w.cfg.MaxAttempts, fmt.Errorf("%d attempts failed, last: %w", w.cfg.MaxAttempts, last)
}

// post makes one attempt. Client errors other than 408 and 429 will not get
// better by retrying.
func (w *Webhook) post(e Event, body []byte, attempt int) (retryAfter time.Duration, permanent bool, err error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, true, fmt.Errorf("webhook %s: the URL does not parse", config.RedactURL(w.cfg.URL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clearpath-gateway")
	req.Header.Set("X-ClearPath-Event", e.Event)
	req.Header.Set("X-ClearPath-Delivery", e.ID)
	req.Header.Set("X-ClearPath-Attempt", strconv.Itoa(attempt))
	if w.cfg.Secret != "" {
		req.Header.Set("X-ClearPath-Signature", Sign(w.cfg.Secret, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// The URL (often a token in its path) must not reach the log.
		if ue, ok := err.(*url.Error); ok {
			ue.URL = config.RedactURL(ue.URL)
		}
		return 0, false, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, false, nil
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	err = fmt.Errorf("%s answered %s", config.RedactURL(w.cfg.URL), resp.Status)
	permanent = resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests
	return retryAfter, permanent, err
}

// Sign returns the X-ClearPath-Signature value of body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// jitter spreads retries of many events over ±20% of d.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}
