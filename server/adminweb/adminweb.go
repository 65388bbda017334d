// Package adminweb is the gateway's admin web page: server-rendered
// html/template pages (no JavaScript at all) behind an OIDC login
// (authorization code + PKCE) that only members of admin_group pass.
// Sessions live in memory behind a random cookie (HttpOnly,
// SameSite=Strict, Secure over TLS, expiring); every change is a POST that
// must carry the session's CSRF token and the page's own Origin; every
// response carries a strict Content-Security-Policy. What the pages show
// and change comes from a Backend (the gateway), which makes each change
// through server/adminops, the code the vpn-gateway commands use.
package adminweb

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/clearpath-vpn/clearpath/server/adminops"
	"github.com/clearpath-vpn/clearpath/server/auth"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/store"
)

//go:embed assets templates
var files embed.FS

// CSP is the Content-Security-Policy of every response: no script at all,
// styles and images only from the page itself, forms only to itself, never
// framed.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Backend is what the pages show and change.
type Backend interface {
	Peers(ctx context.Context) ([]Peer, error)
	Networks(ctx context.Context) ([]Network, error)
	Audit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error)
	Warnings(ctx context.Context) ([]Warning, error)
	DisabledUsers(ctx context.Context) ([]store.DisabledUser, error)
	// Record writes an audit entry (admin logins and refusals).
	Record(ctx context.Context, r store.AuditRecord)
	// Revoke revokes peer id and takes it off the device at once; the
	// string says what happened.
	Revoke(ctx context.Context, who adminops.Actor, id, reason string) (string, error)
	Disable(ctx context.Context, who adminops.Actor, user, reason string) (string, error)
	Enable(ctx context.Context, who adminops.Actor, user string) (string, error)
	// Explain answers whether user would reach target (HOST[:PORT]).
	Explain(ctx context.Context, user, target, network string) (*explain.Answer, error)
	// Flows summarises the flow log (user "" for everyone).
	Flows(ctx context.Context, user string) (*FlowSummary, error)
}

// FlowSummary is the flows page: per user allowed and denied flows and
// bytes, and the top talkers, from the newest part of the flow log.
type FlowSummary struct {
	// Source names what was read ("the last 8 MiB of /var/lib/.../flows.jsonl").
	Source string
	// Off says why there is nothing (filter off, no log).
	Off   string
	Users []FlowUser
	Top   []FlowTalker
}

// FlowUser is one user's flows.
type FlowUser struct {
	User              string
	Allowed, Denied   int
	Bytes, ReplyBytes uint64
	LastSeen          time.Time
}

// FlowTalker is one (user, destination) pair by bytes both ways.
type FlowTalker struct {
	User, Dst, Proto, Verdict string
	Flows                     int
	Bytes                     uint64
}

// Peer is one row of the peers page.
type Peer struct {
	ID, User, Network, Hostname, OS string
	Addresses                       []string
	LastHandshake                   time.Time
	Rx, Tx                          int64
	OnDevice                        bool
	Expires                         time.Time
}

// Network is one row of the networks page.
type Network struct {
	Name, Group, Interface string
	Pool, Allow            []string
	LocalPorts             []string
	// Access describes the network's access rules, one line each
	// (config.Network.AccessSummary, as vpn-gateway check prints them).
	Access                []string
	Registered, Connected int
	Rx, Tx                int64
}

// Warning is one key in a warning state now.
type Warning struct {
	Kind, User, Network, PeerID, Hostname string
	Detail                                string
}

// Options configure the page.
type Options struct {
	Backend Backend
	// Issuer, ClientID: the identity provider and the client the page logs
	// in with; Verifier checks ID tokens for ClientID.
	Issuer, ClientID string
	Verifier         *auth.Verifier
	// URL is the page's origin (scheme://host:port).
	URL string
	// Group is admin_group.
	Group      string
	SessionTTL time.Duration
	Log        *slog.Logger
	Now        func() time.Time
	// HTTPClient reaches the identity provider (discovery, token endpoint).
	HTTPClient *http.Client
}

// Handler serves the admin page.
type Handler struct {
	o        Options
	secure   bool
	cookie   string // session cookie name
	sessions *sessions
	tmpl     map[string]*template.Template
	mux      *http.ServeMux

	epMu     sync.Mutex
	endpoint *oauth2.Endpoint
}

const loginCookie = "cp_admin_login"

// bufPool holds render buffers: a page is rendered whole before its status
// is written, so a template error never leaves half a page.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// New returns the admin page's handler.
func New(o Options) (*Handler, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = auth.HTTPClient()
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("admin page URL %q: want scheme://host:port", o.URL)
	}
	h := &Handler{o: o, secure: u.Scheme == "https", sessions: newSessions(), tmpl: map[string]*template.Template{}}
	h.cookie = "cp_admin"
	if h.secure {
		// __Host-: Secure, Path=/, no Domain, enforced by the browser.
		h.cookie = "__Host-cp_admin"
	}
	for _, page := range []string{"peers", "networks", "audit", "warnings", "users", "explain", "flows", "message"} {
		t, err := template.New("layout.html").Funcs(funcs(o.Now)).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("admin page template %s: %w", page, err)
		}
		h.tmpl[page] = t
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/peers", http.StatusSeeOther) })
	mux.HandleFunc("GET /login", h.login)
	mux.HandleFunc("GET "+callbackPath, h.callback)
	mux.HandleFunc("POST /logout", h.change(h.logout))
	mux.HandleFunc("GET /peers", h.page(h.peers))
	mux.HandleFunc("POST /peers/revoke", h.change(h.revoke))
	mux.HandleFunc("GET /networks", h.page(h.networks))
	mux.HandleFunc("GET /audit", h.page(h.audit))
	mux.HandleFunc("GET /warnings", h.page(h.warnings))
	mux.HandleFunc("GET /users", h.page(h.users))
	mux.HandleFunc("GET /explain", h.page(h.explain))
	mux.HandleFunc("GET /flows", h.page(h.flows))
	mux.HandleFunc("POST /users/disable", h.change(h.disable))
	mux.HandleFunc("POST /users/enable", h.change(h.enable))
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		http.ServeFileFS(w, r, files, "assets/style.css")
	})
	h.mux = mux
	return h, nil
}

const callbackPath = "/auth/callback"

// ServeHTTP sets the security headers of every answer and serves.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer Chromium sends
	// "Origin: null" on the page's own form posts, which the Origin check
	// must refuse.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if h.secure {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

// admin is the logged-in administrator of a request.
type admin struct {
	id string
	session
}

func (a admin) actor(r *http.Request) adminops.Actor {
	name := a.Email
	if name == "" {
		name = a.Subject
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return adminops.Actor{Name: name, Remote: "admin-web " + host}
}

func (h *Handler) current(r *http.Request) (admin, bool) {
	c, err := r.Cookie(h.cookie)
	if err != nil || c.Value == "" {
		return admin{}, false
	}
	s, ok := h.sessions.get(c.Value, h.o.Now())
	return admin{id: c.Value, session: s}, ok
}

// view is what every page template gets.
type view struct {
	Title, Page     string
	Admin           string
	CSRF            string
	Flash, FlashErr string
	Expires         time.Time
	Data            any
}

func (h *Handler) page(fn func(r *http.Request, a admin) (string, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := h.current(r)
		if !ok {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		name, data, err := fn(r, a)
		if err != nil {
			h.o.Log.Error("admin page", "path", r.URL.Path, "err", err)
			h.message(w, http.StatusInternalServerError, "Error", err.Error())
			return
		}
		v := view{Title: name, Page: name, Admin: a.actor(r).Name, CSRF: a.CSRF, Expires: a.Expires, Data: data}
		v.Flash, v.FlashErr = h.sessions.flash(a.id, "", "", true)
		h.render(w, http.StatusOK, name, v)
	}
}

func (h *Handler) render(w http.ResponseWriter, code int, name string, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	b := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 16<<20 {
			b.Reset()
			bufPool.Put(b)
		}
	}()
	if err := h.tmpl[name].Execute(b, v); err != nil {
		h.o.Log.Error("admin page render", "page", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (h *Handler) message(w http.ResponseWriter, code int, title, msg string) {
	h.render(w, code, "message", view{Title: title, Page: "message", Data: msg})
}

// errForbidden words a change refused by the Origin check.
var errForbidden = errors.New("forbidden")

// change wraps a POST: a live session, the page's own Origin and the
// session's CSRF token, or 403 and nothing done.
func (h *Handler) change(fn func(w http.ResponseWriter, r *http.Request, a admin) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := h.checkOrigin(r); err != nil {
			h.o.Log.Warn("admin page: change refused", "path", r.URL.Path, "remote", r.RemoteAddr, "why", err)
			h.message(w, http.StatusForbidden, "Forbidden", err.Error())
			return
		}
		a, ok := h.current(r)
		if !ok {
			h.message(w, http.StatusForbidden, "Forbidden", "no live admin session: log in again")
			return
		}
		if err := r.ParseForm(); err != nil {
			h.message(w, http.StatusBadRequest, "Bad request", "unreadable form: "+err.Error())
			return
		}
		if !equalTokens(r.PostForm.Get("csrf"), a.CSRF) {
			h.o.Log.Warn("admin page: change refused", "path", r.URL.Path, "remote", r.RemoteAddr, "admin", a.Email, "why", "bad CSRF token")
			h.message(w, http.StatusForbidden, "Forbidden", "the form's CSRF token is missing or wrong: reload the page and try again")
			return
		}
		back, err := fn(w, r, a)
		if back == "" {
			return // fn answered
		}
		if err != nil {
			h.sessions.flash(a.id, "", err.Error(), false)
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// checkOrigin accepts a change only from the page itself: the browser's
// Origin header must be the page's URL (browsers send it on every POST).
func (h *Handler) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return fmt.Errorf("%w: the request has no Origin header", errForbidden)
	case origin != h.o.URL:
		return fmt.Errorf("%w: Origin %q is not this page (%s)", errForbidden, origin, h.o.URL)
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return fmt.Errorf("%w: Sec-Fetch-Site is %q", errForbidden, s)
	}
	return nil
}

func (h *Handler) ok(a admin, msg string) {
	h.sessions.flash(a.id, msg, "", false)
}

// --- login -------------------------------------------------------------

func (h *Handler) oauth(ctx context.Context) (*oauth2.Config, error) {
	h.epMu.Lock()
	defer h.epMu.Unlock()
	if h.endpoint == nil {
		ctx, cancel := context.WithTimeout(ctx, auth.FetchTimeout)
		defer cancel()
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, h.o.HTTPClient), h.o.Issuer)
		if err != nil {
			return nil, fmt.Errorf("identity provider %s: %w", h.o.Issuer, err)
		}
		ep := p.Endpoint()
		h.endpoint = &ep
	}
	return &oauth2.Config{ClientID: h.o.ClientID, Endpoint: *h.endpoint, RedirectURL: h.o.URL + callbackPath,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", "groups"}}, nil
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.current(r); ok {
		http.Redirect(w, r, "/peers", http.StatusSeeOther)
		return
	}
	oc, err := h.oauth(r.Context())
	if err != nil {
		h.o.Log.Error("admin page login", "err", err)
		h.message(w, http.StatusServiceUnavailable, "Identity provider unreachable", err.Error())
		return
	}
	now := h.o.Now()
	l := login{verifier: oauth2.GenerateVerifier(), nonce: randomToken(), expires: now.Add(loginTTL)}
	state, ok := h.sessions.startLogin(l, now)
	if !ok {
		h.message(w, http.StatusServiceUnavailable, "Busy", "too many logins in progress; try again later")
		return
	}
	// Lax, not Strict: the identity provider's redirect back is a
	// cross-site navigation, which must carry this cookie. It only binds
	// the callback to this browser; it grants nothing.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state, Path: callbackPath, MaxAge: int(loginTTL.Seconds()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(state, oauth2.S256ChallengeOption(l.verifier), oidc.Nonce(l.nonce)), http.StatusFound)
}

func (h *Handler) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: callbackPath, MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode})
	if e := q.Get("error"); e != "" {
		h.message(w, http.StatusUnauthorized, "Login failed", "the identity provider said: "+e+" "+q.Get("error_description"))
		return
	}
	c, err := r.Cookie(loginCookie)
	state := q.Get("state")
	if err != nil || !equalTokens(c.Value, state) {
		h.message(w, http.StatusBadRequest, "Login failed", "this login was not started by this browser (state does not match the login cookie): start again from /login")
		return
	}
	now := h.o.Now()
	l, ok := h.sessions.takeLogin(state, now)
	if !ok {
		h.message(w, http.StatusBadRequest, "Login failed", "the login expired or was already used: start again from /login")
		return
	}
	oc, err := h.oauth(r.Context())
	if err != nil {
		h.message(w, http.StatusServiceUnavailable, "Identity provider unreachable", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), h.o.HTTPClient), auth.FetchTimeout)
	defer cancel()
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		h.message(w, http.StatusUnauthorized, "Login failed", "exchanging the code failed: "+err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := h.o.Verifier.Verify(r.Context(), raw)
	if err != nil {
		h.message(w, http.StatusUnauthorized, "Login failed", "the ID token was refused: "+err.Error())
		return
	}
	if n := id.Nonce; !equalTokens(n, l.nonce) {
		h.message(w, http.StatusUnauthorized, "Login failed", "the ID token's nonce does not match this login")
		return
	}
	who := id.Email
	if who == "" {
		who = id.Subject
	}
	remote, _, _ := net.SplitHostPort(r.RemoteAddr)
	if !slices.Contains(id.Groups, h.o.Group) {
		h.o.Backend.Record(r.Context(), store.AuditRecord{Actor: who, Action: "refuse", Subject: id.Subject, Email: id.Email, Remote: "admin-web " + remote,
			Detail: "admin page login refused: not a member of admin_group " + h.o.Group})
		h.o.Log.Warn("admin page: login refused, not in admin_group", "user", who, "admin_group", h.o.Group)
		h.message(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("%s is not a member of %s, the gateway's admin group.", who, h.o.Group))
		return
	}
	s := &session{Email: id.Email, Subject: id.Subject, CSRF: randomToken(), Expires: now.Add(h.o.SessionTTL)}
	sid, ok := h.sessions.create(s, now)
	if !ok {
		h.message(w, http.StatusServiceUnavailable, "Busy", "too many admin sessions; try again later")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: h.cookie, Value: sid, Path: "/", Expires: s.Expires, MaxAge: int(h.o.SessionTTL.Seconds()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode})
	h.o.Backend.Record(r.Context(), store.AuditRecord{Actor: who, Action: "login", Subject: id.Subject, Email: id.Email, Remote: "admin-web " + remote, Detail: "admin page login"})
	h.o.Log.Info("admin page: login", "admin", who, "expires", s.Expires)
	// A page of our own moves on to /peers: the SameSite=Strict cookie is
	// not sent on the rest of the provider's cross-site redirect chain.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><meta http-equiv="refresh" content="0;url=/peers"><title>Logged in</title><a href="/peers">Continue</a>`)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, a admin) (string, error) {
	h.sessions.delete(a.id)
	http.SetCookie(w, &http.Cookie{Name: h.cookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode})
	h.message(w, http.StatusOK, "Logged out", "You are logged out.")
	return "", nil
}
