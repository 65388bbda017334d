package notify

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/config"
)

type delivery struct {
	attempt   int
	at        time.Time
	event     Event
	signature string
	raw       []byte
}

// receiver is a real HTTP server on loopback that fails the first n
// attempts of every event with status.
func receiver(t *testing.T, failFirst int, status int) (*httptest.Server, func() []delivery) {
	var mu sync.Mutex
	var got []delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var e Event
		json.Unmarshal(raw, &e)
		n, _ := strconv.Atoi(r.Header.Get("X-ClearPath-Attempt"))
		mu.Lock()
		got = append(got, delivery{n, time.Now(), e, r.Header.Get("X-ClearPath-Signature"), raw})
		mu.Unlock()
		if n <= failFirst {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []delivery {
		mu.Lock()
		defer mu.Unlock()
		return append([]delivery(nil), got...)
	}
}

func newHook(url string, attempts int, results chan<- Result) *Webhook {
	w := New(config.Webhook{URL: url, Secret: "s3cret", Timeout: 2 * time.Second, MaxAttempts: attempts, Backoff: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	w.OnResult = func(r Result) { results <- r }
	return w
}

func TestRetriesWithBackoffUntilAccepted(t *testing.T) {
	srv, got := receiver(t, 2, http.StatusServiceUnavailable)
	results := make(chan Result, 1)
	w := newHook(srv.URL, 5, results)
	defer w.Close(time.Second)
	w.Send(Event{Event: PeerExpiring, User: "alice", Network: "eng", PeerID: "p1", Lead: "1h0m0s", Message: "expires soon"})
	r := <-results
	if r.Err != nil || r.Attempts != 3 {
		t.Fatalf("result = %+v, want delivered on attempt 3", r)
	}
	d := got()
	if len(d) != 3 {
		t.Fatalf("receiver saw %d attempts", len(d))
	}
	// Backoff doubles (±20% jitter): ~50ms, then ~100ms. Only lower bounds:
	// a loaded machine stretches either gap (a second wait of at least
	// 80 ms is more than the first could be without doubling).
	gap1, gap2 := d[1].at.Sub(d[0].at), d[2].at.Sub(d[1].at)
	if gap1 < 35*time.Millisecond || gap2 < 75*time.Millisecond {
		t.Errorf("gaps %v then %v: want about 50ms then 100ms", gap1, gap2)
	}
	for _, x := range d {
		if x.event.ID != d[0].event.ID || x.event.PeerID != "p1" || x.event.Event != PeerExpiring {
			t.Errorf("attempt %d carried %+v", x.attempt, x.event)
		}
		if x.signature != Sign("s3cret", x.raw) {
			t.Errorf("attempt %d: bad signature %q", x.attempt, x.signature)
		}
	}
}

func TestGivesUpAfterMaxAttemptsAndOnClientErrors(t *testing.T) {
	srv, got := receiver(t, 100, http.StatusInternalServerError)
	results := make(chan Result, 1)
	w := newHook(srv.URL, 3, results)
	w.Send(Event{Event: PeerIdle, PeerID: "p2"})
	if r := <-results; r.Err == nil || r.Attempts != 3 || len(got()) != 3 {
		t.Errorf("result = %+v after %d attempts, want failure after 3", r, len(got()))
	}
	w.Close(time.Second)

	srv2, got2 := receiver(t, 100, http.StatusBadRequest)
	w2 := newHook(srv2.URL, 5, results)
	defer w2.Close(time.Second)
	w2.Send(Event{Event: PeerIdle, PeerID: "p3"})
	if r := <-results; r.Err == nil || r.Attempts != 1 || len(got2()) != 1 {
		t.Errorf("a 400 must not be retried: %+v, %d attempts", r, len(got2()))
	}
}

func TestUnreachableReceiverIsRetried(t *testing.T) {
	srv, got := receiver(t, 0, 0)
	url := srv.URL
	srv.Close() // nothing listens any more
	results := make(chan Result, 1)
	w := newHook(url, 2, results)
	defer w.Close(time.Second)
	w.Send(Event{Event: PeerExpired, PeerID: "p4"})
	if r := <-results; r.Err == nil || r.Attempts != 2 {
		t.Errorf("result = %+v", r)
	}
	if len(got()) != 0 {
		t.Error("closed server received something")
	}
}

// A webhook URL's path (Slack-style hooks carry their token there) never
// reaches the error that the gateway logs. On main both the refused and the
// unreachable delivery print the whole URL.
func TestFailuresDoNotPrintTheURL(t *testing.T) {
	srv, _ := receiver(t, 100, http.StatusForbidden)
	results := make(chan Result, 1)
	w := newHook(srv.URL+"/services/T0/B0/tok-s3cret", 1, results)
	w.Send(Event{Event: PeerIdle, PeerID: "p5"})
	r := <-results
	w.Close(time.Second)
	if r.Err == nil || strings.Contains(r.Err.Error(), "tok-s3cret") || !strings.Contains(r.Err.Error(), "/… answered 403") {
		t.Errorf("refused delivery: %v", r.Err)
	}
	dead, _ := receiver(t, 0, 0)
	url := dead.URL + "/services/T0/B0/tok-s3cret"
	dead.Close()
	w2 := newHook(url, 1, results)
	defer w2.Close(time.Second)
	w2.Send(Event{Event: PeerIdle, PeerID: "p6"})
	if r := <-results; r.Err == nil || strings.Contains(r.Err.Error(), "tok-s3cret") {
		t.Errorf("unreachable receiver: %v", r.Err)
	}
}

// A receiver that accepts the connection and never answers costs each
// attempt its timeout, not a delivery slot for ever.
func TestSilentReceiverIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	results := make(chan Result, 1)
	w := New(config.Webhook{URL: "http://" + ln.Addr().String() + "/hook", Timeout: 300 * time.Millisecond, MaxAttempts: 2, Backoff: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
	w.OnResult = func(r Result) { results <- r }
	defer w.Close(time.Second)
	start := time.Now()
	w.Send(Event{Event: PeerExpired, PeerID: "p5"})
	select {
	case r := <-results:
		if r.Err == nil || r.Attempts != 2 {
			t.Errorf("result = %+v", r)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("two 300ms attempts took %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("delivery to a silent receiver hangs")
	}
}

// Response headers beyond 64 KB end the attempt.
func TestHugeResponseHeadersRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Junk", strings.Repeat("j", 200<<10))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	results := make(chan Result, 1)
	w := newHook(srv.URL, 1, results)
	defer w.Close(time.Second)
	w.Send(Event{Event: PeerExpired, PeerID: "p6"})
	if r := <-results; r.Err == nil || !strings.Contains(r.Err.Error(), "header") {
		t.Errorf("200 KB of response headers accepted: %+v", r)
	}
}
