package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testbrowser"
)

// The admin page as the lab serves it: HTTPS with the gateway's certificate
// on admin_listen's default, loopback inside gw.
const (
	adminURL     = "https://127.0.0.1:9443"
	adminSession = 150 * time.Second
)

// TestAdminPage drives the admin page in a real headless Chromium inside
// gw (where the page listens on loopback): carol (group ops, the
// admin_group) logs in through Dex, sees alice's peer with her tunnel
// address and rx/tx moving, and revokes it; alice's traffic stops within
// 2 s. Forged and cross-site changes are refused with nothing changed, alice
// (not an admin) gets 403, and the session ends when admin.session_ttl says.
func TestAdminPage(t *testing.T) {
	e := newEnv(t, stack.WithGatewayConfig(fmt.Sprintf("admin_group: ops\nadmin:\n  client_id: %s\n  session_ttl: %s\nlifecycle:\n  unused_after: 10s\n", dex.AdminClientID, adminSession)))
	testbrowser.Require(t)

	// alice's tunnel, with traffic.
	alice := e.Client("alice")
	tok, err := e.TokenFile(ctxT(t, 10*time.Second), "alice")
	must(t, err)
	up(t, alice, tok)
	v4, _ := tunnelAddrs(t, alice)
	key := e.clientKey(t, alice)
	pl := startPingLoop(t, e.Laptop, lab.VPCAIP4, 20*time.Millisecond)
	defer pl.Stop()
	if _, ok := waitUntil(5*time.Second, func() bool { return !pl.lastReply().IsZero() }); !ok {
		t.Fatal("no ping reply from vpc-a through alice's tunnel")
	}
	// A key registered and never used, for the warnings page.
	bobTok, err := e.TokenFile(ctxT(t, 10*time.Second), "bob")
	must(t, err)
	registerKey(t, e, readToken(t, bobTok), "")

	spki := certSPKI(t, e.TLSCert)
	bctx := adminBrowser(t, e.GW, spki, 4*time.Minute)
	carol, _ := dex.LookupUser("carol")

	// Login through Dex.
	loginStart := time.Now()
	if err := chromedp.Do(bctx, chromedp.Navigate(adminURL+"/login"), testbrowser.DexLogin(carol.Email, carol.Password),
		chromedp.WaitVisible(chromedp.CSS("#peers"))); err != nil {
		t.Fatalf("admin login: %v\n%s", err, e.Gateway.Log())
	}
	loggedIn := time.Now()
	t.Logf("ADMIN LOGIN through Dex took %v", loggedIn.Sub(loginStart).Round(time.Millisecond))
	if who := text(t, bctx, "#admin"); who != carol.Email {
		t.Errorf("the page says the admin is %q, want %s", who, carol.Email)
	}
	cookie := sessionCookie(t, bctx)
	if !cookie.HTTPOnly || !cookie.Secure || cookie.SameSite != network.CookieSameSiteStrict || cookie.Session || cookie.Path != "/" {
		t.Errorf("session cookie %s: HttpOnly %v Secure %v SameSite %s session-only %v path %s; want HttpOnly, Secure, Strict, with expiry, /",
			cookie.Name, cookie.HTTPOnly, cookie.Secure, cookie.SameSite, cookie.Session, cookie.Path)
	}
	if exp := time.Unix(int64(cookie.Expires), 0); exp.Before(loginStart.Add(adminSession-5*time.Second)) || exp.After(loggedIn.Add(adminSession+5*time.Second)) {
		t.Errorf("session cookie expires %v, want about %v after login", exp, adminSession)
	}

	// alice's row: her address, rx/tx moving.
	id, row := peerRow(t, bctx, v4.String())
	rx0 := cell(row, "rx")
	time.Sleep(1500 * time.Millisecond)
	must(t, chromedp.Do(bctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#peers"))))
	_, row = peerRow(t, bctx, v4.String())
	if rx1 := cell(row, "rx"); rx1 == rx0 {
		t.Errorf("alice's rx did not move in 1.5 s of pings: %s then %s", rx0, rx1)
	} else {
		t.Logf("alice's peer %s at %s: rx %s then %s", id, v4, rx0, rx1)
	}
	csrf := attr(t, bctx, "input[name=csrf]", "value")

	// Headers of every page: CSP without script, no framing, no caching.
	hc := adminClient(t, e)
	resp := adminDo(t, hc, "GET", "/peers", cookie.Value, "", nil)
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Strict-Transport-Security": "max-age"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s: %q, want it to contain %q", h, resp.Header.Get(h), want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows scripts: %s", csp)
	}

	// Screenshots of each page.
	for _, p := range []string{"peers", "networks", "audit", "warnings"} {
		shot(t, bctx, p)
	}

	// Explain, as `vpn-gateway explain`, while alice has a live key.
	for target, want := range map[string]string{vpcA4: "YES", net.JoinHostPort(lab.VPCBIP4, "8000"): "NO"} {
		must(t, chromedp.Do(bctx, chromedp.Navigate(adminURL+"/explain?user=alice@example.com&network=eng&target="+url.QueryEscape(target)),
			chromedp.WaitVisible(chromedp.CSS("#verdict"))))
		if v := text(t, bctx, "#verdict"); !strings.HasPrefix(v, want) {
			t.Errorf("explain alice %s: %q, want %s", target, v, want)
		}
	}
	shot(t, bctx, "explain")

	// Attacks, each with alice's key still on the device and no revoke
	// audited afterwards.
	unchanged := func(what string) {
		t.Helper()
		if !e.onDevice(t, e.EngIface, key) {
			t.Fatalf("%s: alice's key left %s", what, e.EngIface)
		}
		if recs := e.auditLog(t, "--action", "revoke"); len(recs) != 0 {
			t.Fatalf("%s: a revocation was audited: %+v", what, recs)
		}
	}
	form := url.Values{"peer": {id}, "reason": {"forged"}}
	for _, a := range []struct {
		name, origin, csrf string
		cookie             bool
	}{
		{"no CSRF token", adminURL, "", true},
		{"wrong CSRF token", adminURL, "AAAA" + csrf[4:], true},
		{"foreign Origin", "https://evil.example", csrf, true},
		{"no Origin", "", csrf, true},
		{"right token and Origin, no session cookie", adminURL, csrf, false},
	} {
		f := url.Values{"csrf": {a.csrf}}
		for k, v := range form {
			f[k] = v
		}
		c := cookie.Value
		if !a.cookie {
			c = ""
		}
		resp := adminDo(t, hc, "POST", "/peers/revoke", c, a.origin, f)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("forged POST (%s): %s, want 403\n%s", a.name, resp.Status, body)
		}
		unchanged(a.name)
		t.Logf("ATTACK forged POST /peers/revoke (%s): %s, alice's key still on %s", a.name, resp.Status, e.EngIface)
	}
	// Cross-site: a page elsewhere that the admin's browser opens submits a
	// revocation form by script.
	evil := crossSitePage(t, e.GW, adminURL+"/peers/revoke", id)
	var evilText string
	if err := chromedp.Do(bctx, chromedp.Navigate(evil), chromedp.WaitVisible(chromedp.CSS("#message"))); err != nil {
		t.Fatalf("cross-site page: %v", err)
	}
	evilText = text(t, bctx, "#message")
	unchanged("cross-site form POST")
	t.Logf("ATTACK cross-site auto-submitted form from %s: the page answered %q; alice's key still on %s", evil, evilText, e.EngIface)

	// The real revocation, by a click.
	must(t, chromedp.Do(bctx, chromedp.Navigate(adminURL+"/peers"), chromedp.WaitVisible(chromedp.CSS("#peer-"+id))))
	must(t, chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS("#peer-"+id+" input[name=reason]"), "lost laptop")))
	start := time.Now()
	must(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#peer-"+id+" button"))))
	_, ok := waitUntil(5*time.Second, func() bool { return !e.onDevice(t, e.EngIface, key) })
	goneAt := time.Now() // the key was seen gone (measured from before the click)
	gone := goneAt.Sub(start)
	if !ok || gone > 2*time.Second {
		t.Errorf("alice's key still on %s %v after the click, want gone within 2 s", e.EngIface, gone)
	}
	// Traffic has stopped when nothing sent after the key was seen gone is
	// answered (300 ms of pings every 20 ms).
	time.Sleep(500 * time.Millisecond)
	if pl.repliedSince(goneAt) {
		t.Errorf("vpc-a still answered alice after her key left the device")
	}
	must(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#flash, #flash-err"))))
	flash := text(t, bctx, ".flash")
	t.Logf("REVOCATION from the admin page: alice's key off %s %v after the click; the page said %q", e.EngIface, gone.Round(time.Millisecond), flash)
	if !strings.Contains(flash, "Revoked peer "+id) {
		t.Errorf("flash after revoking: %q", flash)
	}
	e.unreachable(t, vpcA4, "alice after the admin page revoked her key")
	if recs := e.auditLog(t, "--action", "revoke", "--user", "alice@example.com"); !hasAudit(recs, "revoke", carol.Email, "admin-web", "lost laptop", id) {
		t.Errorf("no revoke audited with carol as actor from the admin page: %+v", recs)
	}
	// The audit page, filtered.
	must(t, chromedp.Do(bctx, chromedp.Navigate(adminURL+"/audit?user=alice@example.com&action=revoke"), chromedp.WaitVisible(chromedp.CSS("#audit"))))
	if a := text(t, bctx, "#audit tbody"); !strings.Contains(a, carol.Email) || !strings.Contains(a, "lost laptop") || strings.Contains(a, "register") {
		t.Errorf("audit page filtered on alice and revoke shows:\n%s", a)
	}
	shot(t, bctx, "audit-filtered")

	// Users: disable bob (his key goes), then enable him, as the CLI would.
	must(t, chromedp.Do(bctx, chromedp.Navigate(adminURL+"/users"), chromedp.WaitVisible(chromedp.CSS("#disable")),
		chromedp.SendKeys(chromedp.CSS("#disable input[name=user]"), "bob@example.com"),
		chromedp.SendKeys(chromedp.CSS("#disable input[name=reason]"), "left the company"),
		chromedp.Click(chromedp.CSS("#disable button")), chromedp.WaitVisible(chromedp.CSS(".flash"))))
	if f := text(t, bctx, ".flash"); !strings.Contains(f, "Disabled bob@example.com; 1 key(s) revoked") {
		t.Errorf("disable bob: %q", f)
	}
	if out := e.adminOK(t, "users", "list"); !strings.Contains(out, "bob@example.com") || !strings.Contains(out, carol.Email) {
		t.Errorf("users list after disabling bob from the page:\n%s", out)
	}
	if recs := e.auditLog(t, "--action", "disable"); !hasAudit(recs, "disable", carol.Email, "bob@example.com", "left the company", "admin-web") {
		t.Errorf("disable not audited as carol from the page: %+v", recs)
	}
	shot(t, bctx, "users")
	must(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#users button")), chromedp.WaitVisible(chromedp.CSS(".flash"))))
	if out := e.adminOK(t, "users", "list"); strings.Contains(out, "bob@example.com") {
		t.Errorf("bob still disabled after Enable:\n%s", out)
	}

	// A member of no admin group: 403, no session.
	nctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	defer cancel()
	aliceUser, _ := dex.LookupUser("alice")
	if err := chromedp.Do(nctx, chromedp.Navigate(adminURL+"/login"), testbrowser.DexLogin(aliceUser.Email, aliceUser.Password),
		chromedp.WaitVisible(chromedp.CSS("#message"))); err != nil {
		t.Fatalf("non-admin login: %v", err)
	}
	msg := text(t, nctx, "#message")
	if !strings.Contains(msg, "not a member of ops") {
		t.Errorf("alice (not in admin_group) sees %q", msg)
	}
	// No session came of it: /peers sends her back to log in.
	must(t, chromedp.Do(nctx, chromedp.Navigate(adminURL+"/peers")))
	if loc, _ := chromedp.Run(nctx, chromedp.Location()); strings.HasPrefix(loc, adminURL+"/peers") {
		t.Errorf("alice reaches /peers after a refused login")
	}
	t.Logf("NON-ADMIN alice: %q", msg)
	if recs := e.auditLog(t, "--action", "refuse", "--user", "alice@example.com"); !hasAudit(recs, "refuse", "admin_group") {
		t.Errorf("refused admin login not audited: %+v", recs)
	}

	// Flows: alice's pings end with her key and reach the flow log once
	// idle (30 s, scanned every 10 s); the page then shows them as hers.
	var flows string
	if _, ok := waitUntil(70*time.Second, func() bool {
		if err := chromedp.Do(bctx, chromedp.Navigate(adminURL+"/flows?user=alice@example.com"), chromedp.WaitVisible(chromedp.CSS("main h1"))); err != nil {
			return false
		}
		flows, _ = chromedp.Run(bctx, chromedp.Text(chromedp.CSS("main")))
		if strings.Contains(flows, lab.VPCAIP4) {
			return true
		}
		time.Sleep(3 * time.Second)
		return false
	}); !ok {
		t.Errorf("alice's flows to %s never showed on the flows page:\n%s", lab.VPCAIP4, flows)
	} else {
		t.Logf("FLOWS page for alice:\n%s", flows)
	}
	shot(t, bctx, "flows")

	// Session expiry: after admin.session_ttl the page sends carol to log in
	// again, and her old cookie and token change nothing.
	time.Sleep(time.Until(loggedIn.Add(adminSession + time.Second)))
	var loc string
	must(t, chromedp.Do(bctx, chromedp.Navigate(adminURL+"/peers"), chromedp.WaitVisible(chromedp.ID("login"))))
	loc, _ = chromedp.Run(bctx, chromedp.Location())
	if !strings.HasPrefix(loc, dex.Issuer) {
		t.Errorf("after the session expired /peers led to %s, want the identity provider's login", loc)
	}
	resp = adminDo(t, hc, "POST", "/users/disable", cookie.Value, adminURL, url.Values{"csrf": {csrf}, "user": {"bob@example.com"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST with an expired session: %s, want 403", resp.Status)
	}
	if out := e.adminOK(t, "users", "list"); strings.Contains(out, "bob") {
		t.Errorf("bob was disabled with an expired session:\n%s", out)
	}
	t.Logf("SESSION EXPIRY: %v after login /peers led to the login page; a POST with the old cookie and CSRF token got %s", time.Since(loggedIn).Round(time.Second), resp.Status)
}

// adminBrowser starts Chromium inside node trusting exactly the key of the
// gateway's certificate (its SPKI hash), which names the public addresses
// but not 127.0.0.1.
func adminBrowser(t *testing.T, node *lab.Node, spki string, within time.Duration) context.Context {
	t.Helper()
	dir := filepath.Join(node.Lab().Dir, "chromium-admin")
	tmp := filepath.Join(dir, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	wrapper := filepath.Join(dir, "chromium-in-"+node.Name)
	script := "#!/bin/sh\nexport TMPDIR=" + tmp + "\nexec ip netns exec " + node.NS + " " + testbrowser.Path + " \"$@\"\n"
	must(t, os.WriteFile(wrapper, []byte(script), 0o755))
	ctx := testbrowser.NewWithin(t, wrapper, filepath.Join(dir, "profile"), within,
		chromedp.Flag("ignore-certificate-errors-spki-list", spki), chromedp.WindowSize(1400, 900))
	return ctx
}

func certSPKI(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	must(t, err)
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	must(t, err)
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil || !v.Exists {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return v.Value
}

var rowRE = regexp.MustCompile(`(?s)<tr id="peer-([0-9a-f]+)">.*?</tr>`)

// peerRow finds the peers table's row holding addr: the peer id and HTML.
func peerRow(t *testing.T, ctx context.Context, addr string) (string, string) {
	t.Helper()
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("#peers tbody")))
	must(t, err)
	for _, m := range rowRE.FindAllStringSubmatch(html, -1) {
		if strings.Contains(m[0], ">"+addr+" ") || strings.Contains(m[0], ">"+addr+"<") {
			return m[1], m[0]
		}
	}
	t.Fatalf("no row with %s on the peers page:\n%s", addr, html)
	return "", ""
}

func cell(row, class string) string {
	m := regexp.MustCompile(`<td class="` + class + `">([^<]*)</td>`).FindStringSubmatch(row)
	if m == nil {
		return ""
	}
	return m[1]
}

func sessionCookie(t *testing.T, ctx context.Context) *network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{adminURL + "/"}})
	must(t, err)
	for _, c := range res.Cookies {
		if c.Name == "__Host-cp_admin" {
			return c
		}
	}
	t.Fatalf("no __Host-cp_admin cookie after login: %+v", res.Cookies)
	return nil
}

// adminClient reaches the admin page from inside gw, trusting the lab CA
// for the gateway's certificate.
func adminClient(t *testing.T, e *env) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.CA.PEM)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:     e.GW.DialContext,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: lab.GWPublicIP4},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func adminDo(t *testing.T, hc *http.Client, method, path, cookie, origin string, form url.Values) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, adminURL+path, body)
	must(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-cp_admin", Value: cookie})
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := hc.Do(req)
	must(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// crossSitePage serves, on another origin inside node, a page whose script
// posts a revocation of peer to target at once.
func crossSitePage(t *testing.T, node *lab.Node, target, peer string) string {
	t.Helper()
	ln, err := node.Listen("tcp", "127.0.0.2:0")
	must(t, err)
	page := `<!doctype html><form method="post" action="` + target + `"><input name="peer" value="` + peer +
		`"><input name="csrf" value="guessed"><input name="reason" value="cross-site"></form><script>document.forms[0].submit()</script>`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().(*net.TCPAddr).String() + "/"
}

// shot saves a screenshot of an admin page: into docs/ when
// CLEARPATH_DOCS_SCREENSHOTS=1 (how the README's images are made), else
// into the lab directory.
func shot(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	p := page
	if i := strings.Index(page, "-"); i > 0 {
		p = page[:i]
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(strings.SplitN(loc, "?", 2)[0], "/"+p) {
		must(t, chromedp.Do(ctx, chromedp.Navigate(adminURL+"/"+p), chromedp.WaitVisible(chromedp.CSS("main h1"))))
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must(t, err)
	dir := t.TempDir()
	if os.Getenv("CLEARPATH_DOCS_SCREENSHOTS") == "1" {
		root, err := lab.RepoRoot()
		must(t, err)
		dir = filepath.Join(root, "docs")
	}
	must(t, os.WriteFile(filepath.Join(dir, "admin-"+page+".png"), png, 0o644))
}
