package adminweb

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/units"
	"github.com/clearpath-vpn/clearpath/server/api"
	"github.com/clearpath-vpn/clearpath/server/explain"
	"github.com/clearpath-vpn/clearpath/server/store"
)

func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"bytes":   units.Bytes,
		"bytes64": func(n uint64) string { return units.Bytes(int64(min(n, 1<<62))) },
		// printable escapes control characters a client or an identity
		// provider put in host names and e-mails; html/template escapes
		// the markup.
		"printable": api.Printable,
		"ago":       func(t time.Time) string { return ago(t, now()) },
		"in":        func(t time.Time) string { return in(t, now()) },
		"utc":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"join":      strings.Join,
	}
}

func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
	}
	return d.String()
}

type peersData struct {
	// Rows is the table body, written by peerRows.
	Rows         template.HTML
	Shown, Total int
	Filter       string
}

// peerRows writes the peers table's rows. With 10,000 peers the template
// engine's reflection per field cost seconds on a loaded host; here every
// value is escaped with template.HTMLEscapeString, which is right for both
// places values go (element text and double-quoted attributes), and the
// page's template marks the result safe. TestHeadersAndEscaping feeds it
// markup and control characters.
func peerRows(peers []Peer, csrf string, now time.Time) template.HTML {
	if len(peers) == 0 {
		return `<tr><td colspan="10">No registered keys.</td></tr>`
	}
	e := template.HTMLEscapeString
	csrf = e(csrf)
	var b strings.Builder
	b.Grow(len(peers) * 700)
	for _, p := range peers {
		id := e(p.ID)
		b.WriteString(`<tr id="peer-`)
		b.WriteString(id)
		b.WriteString(`"><td>`)
		b.WriteString(e(api.Printable(p.User)))
		b.WriteString(`</td><td>`)
		b.WriteString(e(p.Network))
		b.WriteString(`</td><td>`)
		b.WriteString(e(api.Printable(p.Hostname)))
		b.WriteString(` <small>`)
		b.WriteString(e(api.Printable(p.OS)))
		b.WriteString(`</small></td><td class="addr">`)
		b.WriteString(e(strings.Join(p.Addresses, " ")))
		b.WriteString(`</td><td>`)
		b.WriteString(ago(p.LastHandshake, now))
		if p.OnDevice {
			b.WriteString(`</td><td class="rx">`)
			b.WriteString(units.Bytes(p.Rx))
			b.WriteString(`</td><td class="tx">`)
			b.WriteString(units.Bytes(p.Tx))
		} else {
			b.WriteString(`</td><td>-</td><td>-`)
		}
		b.WriteString(`</td><td>`)
		b.WriteString(in(p.Expires, now))
		b.WriteString(`</td><td><code>`)
		b.WriteString(id)
		b.WriteString(`</code></td><td><form method="post" action="/peers/revoke"><input type="hidden" name="csrf" value="`)
		b.WriteString(csrf)
		b.WriteString(`"><input type="hidden" name="peer" value="`)
		b.WriteString(id)
		b.WriteString(`"><input name="reason" placeholder="reason" size="10"><button type="submit" class="danger">Revoke</button></form></td></tr>` + "\n")
	}
	return template.HTML(b.String())
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return human(now.Sub(t)) + " ago"
}

func in(t, now time.Time) string {
	if !t.After(now) {
		return "expired " + human(now.Sub(t)) + " ago"
	}
	return "in " + human(t.Sub(now))
}

func (h *Handler) peers(r *http.Request, a admin) (string, any, error) {
	all, err := h.o.Backend.Peers(r.Context())
	if err != nil {
		return "", nil, err
	}
	d := peersData{Total: len(all), Filter: r.URL.Query().Get("q")}
	shown := all
	if f := strings.ToLower(d.Filter); f != "" {
		shown = nil
		for _, p := range all {
			if strings.Contains(strings.ToLower(p.User+" "+p.Network+" "+p.Hostname+" "+strings.Join(p.Addresses, " ")), f) {
				shown = append(shown, p)
			}
		}
	}
	d.Shown = len(shown)
	d.Rows = peerRows(shown, a.CSRF, h.o.Now())
	return "peers", d, nil
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, a admin) (string, error) {
	id := strings.TrimSpace(r.PostForm.Get("peer"))
	if id == "" {
		return "/peers", fmt.Errorf("revoke: no peer named")
	}
	msg, err := h.o.Backend.Revoke(r.Context(), a.actor(r), id, strings.TrimSpace(r.PostForm.Get("reason")))
	if err != nil {
		return "/peers", fmt.Errorf("revoke %s: %w", id, err)
	}
	h.ok(a, msg)
	return "/peers", nil
}

func (h *Handler) networks(r *http.Request, _ admin) (string, any, error) {
	n, err := h.o.Backend.Networks(r.Context())
	return "networks", n, err
}

type auditData struct {
	Records             []store.AuditRecord
	User, Action, Since string
	Limit               int
	Actions             []string
	Err                 string
}

// Actions a filter may name (server/audit).
var auditActions = []string{"login", "register", "refresh", "delete", "expire", "warn", "revoke", "disable", "enable", "refuse", "reload", "free", "start", "stop"}

const auditLimit = 1000

func (h *Handler) audit(r *http.Request, _ admin) (string, any, error) {
	q := r.URL.Query()
	d := auditData{User: strings.TrimSpace(q.Get("user")), Action: q.Get("action"), Since: strings.TrimSpace(q.Get("since")), Limit: auditLimit, Actions: auditActions}
	aq := store.AuditQuery{User: d.User, Limit: auditLimit}
	if d.Action != "" {
		found := false
		for _, a := range auditActions {
			found = found || a == d.Action
		}
		if !found {
			d.Err = fmt.Sprintf("action %q: not one of %s", d.Action, strings.Join(auditActions, ", "))
			return "audit", d, nil
		}
		aq.Action = d.Action
	}
	if d.Since != "" {
		t, err := parseSince(d.Since, h.o.Now())
		if err != nil {
			d.Err = err.Error()
			return "audit", d, nil
		}
		aq.Since = t
	}
	recs, err := h.o.Backend.Audit(r.Context(), aq)
	if err != nil {
		return "", nil, err
	}
	// Newest first on the page.
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	d.Records = recs
	return "audit", d, nil
}

// parseSince reads the audit filter's since: a duration back from now
// (90m, 24h, 7d) or a time (2026-11-01, RFC 3339), as `vpn-gateway audit`.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days >= 0 && fmt.Sprint(days) == n {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration (90m, 24h, 7d) or a time (2026-11-01, 2026-11-01T08:00:00Z)", s)
}

func (h *Handler) warnings(r *http.Request, _ admin) (string, any, error) {
	w, err := h.o.Backend.Warnings(r.Context())
	return "warnings", w, err
}

func (h *Handler) users(r *http.Request, _ admin) (string, any, error) {
	u, err := h.o.Backend.DisabledUsers(r.Context())
	return "users", u, err
}

func (h *Handler) disable(w http.ResponseWriter, r *http.Request, a admin) (string, error) {
	user := strings.TrimSpace(r.PostForm.Get("user"))
	if user == "" {
		return "/users", fmt.Errorf("disable: no user named")
	}
	msg, err := h.o.Backend.Disable(r.Context(), a.actor(r), user, strings.TrimSpace(r.PostForm.Get("reason")))
	if err != nil {
		return "/users", fmt.Errorf("disable %s: %w", user, err)
	}
	h.ok(a, msg)
	return "/users", nil
}

func (h *Handler) enable(w http.ResponseWriter, r *http.Request, a admin) (string, error) {
	user := strings.TrimSpace(r.PostForm.Get("user"))
	if user == "" {
		return "/users", fmt.Errorf("enable: no user named")
	}
	msg, err := h.o.Backend.Enable(r.Context(), a.actor(r), user)
	if err != nil {
		return "/users", fmt.Errorf("enable %s: %w", user, err)
	}
	h.ok(a, msg)
	return "/users", nil
}

type explainData struct {
	User, Target, Network string
	Answer                *explain.Answer
	Err                   string
}

func (h *Handler) explain(r *http.Request, _ admin) (string, any, error) {
	q := r.URL.Query()
	d := explainData{User: strings.TrimSpace(q.Get("user")), Target: strings.TrimSpace(q.Get("target")), Network: strings.TrimSpace(q.Get("network"))}
	if d.User == "" && d.Target == "" {
		return "explain", d, nil
	}
	if d.User == "" || d.Target == "" {
		d.Err = "name a user and a HOST[:PORT][/PROTO]"
		return "explain", d, nil
	}
	a, err := h.o.Backend.Explain(r.Context(), d.User, d.Target, d.Network)
	if err != nil {
		d.Err = err.Error()
		return "explain", d, nil
	}
	d.Answer = a
	return "explain", d, nil
}

type flowsData struct {
	User    string
	Summary *FlowSummary
}

func (h *Handler) flows(r *http.Request, _ admin) (string, any, error) {
	d := flowsData{User: strings.TrimSpace(r.URL.Query().Get("user"))}
	s, err := h.o.Backend.Flows(r.Context(), d.User)
	if err != nil {
		return "", nil, err
	}
	d.Summary = s
	return "flows", d, nil
}
