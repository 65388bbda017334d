package adminweb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// fakeBackend records changes; the gateway's backend is tested end to end
// (internal/tstest/e2e TestAdminPage).
type fakeBackend struct {
	mu      sync.Mutex
	peers   []Peer
	revoked []string
	actors  []adminops.Actor
}

func (f *fakeBackend) Peers(context.Context) ([]Peer, error) { return f.peers, nil }
func (f *fakeBackend) Networks(context.Context) ([]Network, error) {
	return []Network{{Name: "eng", Group: "engineering", Pool: []string{"10.8.0.0/24"}, Allow: []string{"10.10.0.0/16"},
		Access: []string{"networks[0].access[0] (eng): groups <dba> -> 10.10.0.10/32 tcp/5432"}}}, nil
}
func (f *fakeBackend) Audit(context.Context, store.AuditQuery) ([]store.AuditRecord, error) {
	return nil, nil
}
func (f *fakeBackend) Warnings(context.Context) ([]Warning, error) { return nil, nil }
func (f *fakeBackend) DisabledUsers(context.Context) ([]store.DisabledUser, error) {
	return nil, nil
}
func (f *fakeBackend) Record(context.Context, store.AuditRecord) {}
func (f *fakeBackend) Revoke(_ context.Context, who adminops.Actor, id, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, id)
	f.actors = append(f.actors, who)
	return "Revoked peer " + id, nil
}
func (f *fakeBackend) Disable(context.Context, adminops.Actor, string, string) (string, error) {
	return "", nil
}
func (f *fakeBackend) Enable(context.Context, adminops.Actor, string) (string, error) { return "", nil }
func (f *fakeBackend) Explain(_ context.Context, user, target, _ string) (*explain.Answer, error) {
	return &explain.Answer{User: user, Host: target, Summary: "<b>" + user + "</b> reaches " + target, Reachable: true,
		Networks: []explain.Verdict{{Network: "eng", Access: &explain.Access{Filtered: true, Allowed: false, Why: "the eBPF filter drops tcp/22: only access[0] (groups dba): 10.10.0.10/32 tcp/5432"}}}}, nil
}
func (f *fakeBackend) Flows(context.Context, string) (*FlowSummary, error) {
	return &FlowSummary{Source: "test", Users: []FlowUser{{User: "alice@example.com", Allowed: 3, Denied: 1}}}, nil
}

const testURL = "https://admin.example:9443"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTest(t testing.TB, peers []Peer) (*Handler, *fakeBackend, *clock) {
	t.Helper()
	b := &fakeBackend{peers: peers}
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	h, err := New(Options{Backend: b, Issuer: "https://idp.example", ClientID: "admin", URL: testURL, Group: "ops",
		SessionTTL: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return h, b, c
}

// loginAs makes a session as the callback does after a verified login.
func loginAs(h *Handler, email string) (cookie, csrf string) {
	s := &session{Email: email, Subject: "sub-" + email, CSRF: randomToken(), Expires: h.o.Now().Add(h.o.SessionTTL)}
	id, _ := h.sessions.create(s, h.o.Now())
	return id, s.CSRF
}

func do(h *Handler, method, path, cookie, origin string, form url.Values) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, testURL+path, body)
	r.RemoteAddr = "192.0.2.7:5555"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		r.AddCookie(&http.Cookie{Name: "__Host-cp_admin", Value: cookie})
	}
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestChangesNeedSessionOriginAndCSRF(t *testing.T) {
	h, b, _ := newTest(t, []Peer{{ID: "p1", User: "alice@example.com", Network: "eng"}})
	cookie, csrf := loginAs(h, "carol@example.com")
	other, _ := loginAs(h, "erin@example.com")
	for _, c := range []struct {
		name, cookie, origin, csrf, fetchSite string
	}{
		{"no session", "", testURL, csrf, ""},
		{"no CSRF token", cookie, testURL, "", ""},
		{"wrong CSRF token", cookie, testURL, csrf[:len(csrf)-1] + "x", ""},
		{"another session's cookie with this token", other, testURL, csrf, ""},
		{"foreign Origin", cookie, "https://evil.example", csrf, ""},
		{"Origin null", cookie, "null", csrf, ""},
		{"no Origin", cookie, "", csrf, ""},
		{"same Origin but cross-site fetch", cookie, testURL, csrf, "cross-site"},
	} {
		r := httptest.NewRequest("POST", testURL+"/peers/revoke", strings.NewReader(url.Values{"peer": {"p1"}, "csrf": {c.csrf}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "__Host-cp_admin", Value: c.cookie})
		}
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			r.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, w.Code)
		}
	}
	if len(b.revoked) != 0 {
		t.Fatalf("refused requests revoked %v", b.revoked)
	}
	// The control: the same request, right, goes through, audited as carol.
	w := do(h, "POST", "/peers/revoke", cookie, testURL, url.Values{"peer": {"p1"}, "csrf": {csrf}})
	if w.Code != http.StatusSeeOther || len(b.revoked) != 1 || b.actors[0].Name != "carol@example.com" || b.actors[0].Remote != "admin-web 192.0.2.7" {
		t.Fatalf("a proper revoke: %d, revoked %v by %+v", w.Code, b.revoked, b.actors)
	}
	// GET never changes anything.
	if w := do(h, "GET", "/peers/revoke?peer=p1", cookie, "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /peers/revoke: %d, want 405", w.Code)
	}
}

func TestSessionExpires(t *testing.T) {
	h, b, c := newTest(t, nil)
	cookie, csrf := loginAs(h, "carol@example.com")
	if w := do(h, "GET", "/peers", cookie, "", nil); w.Code != http.StatusOK {
		t.Fatalf("fresh session: %d", w.Code)
	}
	c.add(time.Hour)
	if w := do(h, "GET", "/peers", cookie, "", nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Errorf("expired session: %d to %q, want a redirect to /login", w.Code, w.Header().Get("Location"))
	}
	if w := do(h, "POST", "/peers/revoke", cookie, testURL, url.Values{"peer": {"p1"}, "csrf": {csrf}}); w.Code != http.StatusForbidden || len(b.revoked) != 0 {
		t.Errorf("change with an expired session: %d, revoked %v", w.Code, b.revoked)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	h, _, _ := newTest(t, nil)
	cookie, csrf := loginAs(h, "carol@example.com")
	if w := do(h, "POST", "/logout", cookie, testURL, url.Values{"csrf": {csrf}}); w.Code != http.StatusOK {
		t.Fatalf("logout: %d", w.Code)
	}
	if w := do(h, "GET", "/peers", cookie, "", nil); w.Code != http.StatusSeeOther {
		t.Errorf("after logout /peers: %d, want a redirect to /login", w.Code)
	}
}

func TestHeadersAndEscaping(t *testing.T) {
	h, _, _ := newTest(t, []Peer{{ID: "p1", User: "<script>alert(1)</script>@x", Hostname: "\x1b[2Jhost\"><img src=x>", Network: "eng", Addresses: []string{"10.8.0.2"}}})
	cookie, _ := loginAs(h, "carol@example.com")
	w := do(h, "GET", "/peers", cookie, "", nil)
	body := w.Body.String()
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x>") || strings.Contains(body, "\x1b") {
		t.Errorf("peer fields reached the page unescaped:\n%s", body)
	}
	hd := w.Result().Header
	for k, want := range map[string]string{"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "Strict-Transport-Security": "max-age=31536000"} {
		if hd.Get(k) != want {
			t.Errorf("%s: %q, want %q", k, hd.Get(k), want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, " on") && strings.Contains(body, "onclick") {
		t.Errorf("the page carries script")
	}
	// Not logged in: every page sends to /login.
	for _, p := range []string{"/peers", "/networks", "/audit", "/warnings", "/users", "/explain", "/flows"} {
		if w := do(h, "GET", p, "", "", nil); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
			t.Errorf("GET %s without a session: %d %q", p, w.Code, w.Header().Get("Location"))
		}
	}
}

func TestCallbackRefusesForeignState(t *testing.T) {
	h, _, _ := newTest(t, nil)
	// No login cookie: a login the attacker started cannot be finished in
	// the victim's browser (login CSRF).
	w := do(h, "GET", "/auth/callback?state=abc&code=xyz", "", "", nil)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "not started by this browser") {
		t.Errorf("callback without the login cookie: %d %s", w.Code, w.Body.String())
	}
	// A cookie naming a state the gateway never issued.
	r := httptest.NewRequest("GET", testURL+"/auth/callback?state=abc&code=xyz", nil)
	r.AddCookie(&http.Cookie{Name: loginCookie, Value: "abc"})
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	if rw.Code != http.StatusBadRequest || !strings.Contains(rw.Body.String(), "expired or was already used") {
		t.Errorf("callback with an unknown state: %d %s", rw.Code, rw.Body.String())
	}
}

func TestAuditFilterNamesBadInput(t *testing.T) {
	h, _, _ := newTest(t, nil)
	cookie, _ := loginAs(h, "carol@example.com")
	for q, want := range map[string]string{"action=drop": `action &#34;drop&#34;: not one of`, "since=yesterday": `since &#34;yesterday&#34;: want a duration`} {
		w := do(h, "GET", "/audit?"+q, cookie, "", nil)
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("audit?%s: want %q in\n%s", q, want, w.Body.String())
		}
	}
}

func manyPeers(n int) []Peer {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	out := make([]Peer, n)
	for i := range out {
		out[i] = Peer{ID: fmt.Sprintf("%016x", i), User: fmt.Sprintf("user%05d@example.com", i), Network: "eng", Hostname: fmt.Sprintf("laptop-%d", i), OS: "linux",
			Addresses: []string{fmt.Sprintf("10.8.%d.%d", i/250, i%250+2), fmt.Sprintf("fd00:8::%x", i+2)}, LastHandshake: now.Add(-time.Duration(i) * time.Second),
			Rx: int64(i) * 1000, Tx: int64(i) * 700, OnDevice: i%3 != 0, Expires: now.Add(30 * 24 * time.Hour)}
	}
	return out
}

// BenchmarkPeersPage10k renders the peers page with 10,000 peers (target:
// under 200 ms).
func BenchmarkPeersPage10k(b *testing.B) {
	h, _, _ := newTest(b, manyPeers(10000))
	cookie, _ := loginAs(h, "carol@example.com")
	b.ResetTimer()
	var size int
	for b.Loop() {
		w := do(h, "GET", "/peers", cookie, "", nil)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/page")
}

func TestReadOnlyPagesRender(t *testing.T) {
	h, _, _ := newTest(t, nil)
	cookie, _ := loginAs(h, "carol@example.com")
	for path, want := range map[string]string{
		"/networks":                             "10.10.0.0/16",
		"/networks?rules":                       "groups &lt;dba&gt; -&gt; 10.10.0.10/32 tcp/5432",
		"/warnings":                             "No key is expiring",
		"/users":                                "No user is disabled",
		"/audit":                                "No entries match",
		"/flows":                                "alice@example.com",
		"/explain?user=<i>x&target=10.0.0.1:22": "&lt;b&gt;&lt;i&gt;x&lt;/b&gt; reaches 10.0.0.1:22",
		"/explain?user=alice":                   "name a user and a HOST[:PORT]",
		"/explain?user=alice&target=10.10.0.10:22/tcp": "dropped by the eBPF filter: the eBPF filter drops tcp/22: only access[0] (groups dba): 10.10.0.10/32 tcp/5432",
	} {
		w := do(h, "GET", path, cookie, "", nil)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET %s: %d, want %q in\n%s", path, w.Code, want, w.Body.String())
		}
	}
}

// A flood of /login requests cannot lock admins out: some pending login
// gives way, and a fresh one always starts.
func TestLoginFloodDoesNotLockOut(t *testing.T) {
	s := newSessions()
	now := time.Now()
	for range maxLogins + 10 {
		if _, ok := s.startLogin(login{expires: now.Add(loginTTL)}, now); !ok {
			t.Fatal("a login could not start")
		}
	}
	state, _ := s.startLogin(login{verifier: "v", expires: now.Add(loginTTL)}, now)
	if l, ok := s.takeLogin(state, now); !ok || l.verifier != "v" {
		t.Fatal("the newest login is lost")
	}
	if len(s.logins) > maxLogins {
		t.Errorf("%d pending logins kept, want at most %d", len(s.logins), maxLogins)
	}
}
