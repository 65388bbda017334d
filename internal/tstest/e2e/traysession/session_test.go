//go:build linux

package traysession

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/internal/tstest/desktop"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/dex"
	"github.com/clearpath-vpn/clearpath/internal/tstest/lab/stack"
	"github.com/clearpath-vpn/clearpath/internal/tstest/testbrowser"
	"github.com/clearpath-vpn/clearpath/tray"
	"github.com/clearpath-vpn/clearpath/tray/ui"
)

// session is one run of the tray app on a desktop, against the lab.
type session struct {
	t     *testing.T
	desk  *desktop.Session
	st    *stack.Stack
	alice *stack.Client
	proc  *lab.Proc
	item  *desktop.Item
	// cfgDir is the user's config dir: the login cache the tray and the
	// CLI share.
	cfgDir string
	// opened collects the URLs the tray asked the desktop to open.
	opened string
	shots  string
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestTraySession: alice logs in from the tray (the browser opens, as
// with `vpn login`), connects with one click (the tunnel carries her
// traffic to vpc-a, the menu now offers Disconnect, the icon is the
// connected one), disconnects with one click (the tunnel is gone, the
// routing table is as before). The CLI and the tray agree: a `vpn up` in
// the terminal shows in the tray, a `vpn down` there is notified. A
// network change that breaks routing gets doctor's notification.
// Screenshots of the menu, the status window and the doctor window go to
// artifacts/.
func TestTraySession(t *testing.T) {
	lab.SkipUnlessRoot(t)
	start := time.Now()
	s := &session{t: t, desk: desktop.StartT(t), shots: filepath.Join(repo, "artifacts")}
	ref := lab.ReferenceT(t, lab.Options{})
	var err error
	if s.st, err = stack.Start(ctxT(t, time.Minute), ref, bins); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.StartWhoAmI(ref.VPCA, "[::]:8000"); err != nil {
		t.Fatal(err)
	}
	s.alice = s.st.Client("alice")
	s.startTray()
	t.Logf("desktop, lab, gateway, Dex and tray up in %v", time.Since(start).Round(time.Millisecond))

	// Nobody is logged in yet.
	s.waitMenu("Not logged in", func(m []desktop.MenuItem) bool { return enabled(m, "Log in") })
	s.wantIcon(tray.NeedsLogin)

	// Log in from the tray: it opens the user's browser on the provider.
	s.click("Log in")
	s.browserLogin("alice")
	s.waitMenu("logged in as alice", func(m []desktop.MenuItem) bool {
		return enabled(m, "Log out alice@example.com") && enabled(m, "Connect")
	})
	s.wantIcon(tray.Disconnected)

	// The laptop's LAN has a route of its own inside the pushed
	// 10.10.0.0/16 (a lab bench behind the office router): the overlap plan
	// keeps it on the LAN.
	if err := ref.Laptop.IP("route", "add", "10.10.5.0/24", "via", lab.HostLANIP4, "dev", ref.LaptopLAN); err != nil {
		t.Fatal(err)
	}
	// One click connects.
	before, err := ref.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	clicked := time.Now()
	s.click("Connect")
	menu := s.waitMenu("connected", connected)
	t.Logf("Connect clicked -> menu offers Disconnect: %v", time.Since(clicked).Round(time.Millisecond))
	s.wantIcon(tray.Connected)
	v4 := s.checkTunnelUp(menu)
	if got, err := ref.Laptop.AskWhoAmI(ctxT(t, 5*time.Second), net.JoinHostPort(lab.VPCAIP4, "8000")); err != nil || got != v4.String() {
		t.Fatalf("through the tunnel vpc-a saw %q (%v), want alice's tunnel address %s", got, err, v4)
	}

	s.screenshotMenu("tray-menu.png")
	// Some traffic while the status window is open, so its rates move.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				ref.Laptop.AskWhoAmI(context.Background(), net.JoinHostPort(lab.VPCAIP4, "8000"))
			}
		}
	}()
	s.screenshotWindow("Open status window", "ClearPath status", "tray-status.png")
	close(stop)

	// One click disconnects.
	clicked = time.Now()
	s.click("Disconnect")
	s.waitMenu("disconnected", func(m []desktop.MenuItem) bool { return enabled(m, "Connect") })
	// Straight to Disconnected: no error while the agent exits.
	s.wantState("Disconnected")
	t.Logf("Disconnect clicked -> menu offers Connect: %v", time.Since(clicked).Round(time.Millisecond))
	s.wantIcon(tray.Disconnected)
	s.checkTunnelDown(before)
	if n := s.notified("disconnected"); len(n) > 0 {
		t.Errorf("a disconnect the user clicked was notified: %+v", n)
	}

	// The terminal and the tray drive the same agent: `vpn up` (with the
	// login the tray made) shows as connected in the tray, and a `vpn down`
	// in the terminal is notified.
	if out, err := s.vpn("up", "--server", stack.ServerURL, "--interface", s.alice.Iface); err != nil {
		t.Fatalf("vpn up with the tray's login: %v\n%s", err, out)
	}
	s.waitMenu("connected by the CLI", connected)
	if out, err := s.vpn("down"); err != nil {
		t.Fatalf("vpn down: %v\n%s", err, out)
	}
	s.waitMenu("disconnected by the CLI", disconnected)
	s.waitNotification("ClearPath disconnected")

	// The network changes under the laptop (its default routes vanish, as
	// when a DHCP client dies): doctor runs by itself and says so.
	if n := s.notified("ClearPath doctor"); len(n) > 0 {
		t.Errorf("doctor notified a problem while the user only connected and disconnected: %+v", n)
	}
	changed := time.Now()
	if err := ref.Laptop.IP("route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	n := s.waitNotification("ClearPath doctor found")
	t.Logf("network change -> doctor notification in %v: %s: %s", time.Since(changed).Round(time.Millisecond), n.Summary, n.Body)
	if !strings.Contains(n.Body, "no default route") {
		t.Errorf("doctor's notification does not name the problem: %q", n.Body)
	}

	// A ClearPath route a killed agent left behind: doctor's window shows
	// it with a Fix button, and clicking Fix removes exactly it.
	if err := ref.Laptop.IP("route", "add", "default", "via", lab.HostLANIP4, "dev", ref.LaptopLAN); err != nil {
		t.Fatal(err)
	}
	if err := ref.Laptop.IP("route", "add", "10.10.0.0/16", "via", lab.HostLANIP4, "dev", ref.LaptopLAN, "table", "7411", "proto", "197"); err != nil {
		t.Fatal(err)
	}
	s.screenshotWindow("Run doctor", "ClearPath doctor", "tray-doctor.png")
	s.clickFix()

	// Another leftover of a killed agent, restored from the menu: "Restore
	// routes" asks the root agent over its socket (none runs after the
	// down, so the tray starts one, whose start restores) and notifies.
	if err := ref.Laptop.IP("route", "add", "10.10.0.0/16", "via", lab.HostLANIP4, "dev", ref.LaptopLAN, "table", "7411", "proto", "197"); err != nil {
		t.Fatal(err)
	}
	clicked = time.Now()
	s.click("Restore routes")
	n = s.waitNotification("ClearPath: routes restored")
	t.Logf("Restore routes clicked -> %q in %v", n.Body, time.Since(clicked).Round(time.Millisecond))
	if out, err := s.st.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", "table", "7411"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after Restore routes table 7411 holds %q (%v)", out, err)
	}
	if out, _ := s.st.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", "default"); !strings.Contains(out, lab.HostLANIP4) {
		t.Errorf("Restore routes touched the default route: %q", out)
	}
	// The agent the tray started idles: `vpn down` ends it.
	if out, err := s.vpn("down"); err != nil {
		t.Fatalf("vpn down of the idle agent: %v\n%s", err, out)
	}

	// Log out: the tray forgets the login it shares with the CLI.
	s.click("Log out alice@example.com")
	s.waitMenu("logged out", func(m []desktop.MenuItem) bool { return enabled(m, "Log in") })
	s.wantIcon(tray.NeedsLogin)
	if tok, err := (&auth.Cache{Dir: s.cfgDir}).Load(stack.ServerURL); err != nil || tok != nil {
		t.Errorf("after Log out the login cache still holds %+v (%v)", tok, err)
	}

	// Quit ends the app cleanly.
	s.click("Quit")
	select {
	case <-s.proc.Done():
		if _, err := s.proc.Exited(); err != nil {
			t.Errorf("vpn-tray exited with %v after Quit:\n%s", err, s.proc.Log())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("vpn-tray still runs 10s after Quit")
	}
	t.Logf("tray session took %v", time.Since(start).Round(time.Millisecond))
}

// startTray runs vpn-tray as the laptop's user would start it, in the
// laptop namespace (its agent and doctor run there too), on the desktop.
func (s *session) startTray() {
	t := s.t
	dir := filepath.Join(s.st.Dir, "alice-desktop")
	s.cfgDir = filepath.Join(dir, "config", "clearpath")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{s.cfgDir, bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The desktop's "open this URL" (pkg/browser runs xdg-open): note the
	// URL; the test's browser opens it.
	s.opened = filepath.Join(dir, "opened-urls")
	stub := "#!/bin/sh\necho \"$1\" >> " + s.opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(s.desk.Env(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"CLEARPATH_CONFIG_DIR="+s.cfgDir, "PATH="+bin+":"+os.Getenv("PATH"))
	var err error
	s.proc, err = s.st.Laptop.StartEnv("vpn-tray", env, trayBin,
		"--state-dir", s.alice.StateDir, "--server", stack.ServerURL, "--interface", s.alice.Iface,
		"--vpn", bins.VPN, "--elevate", "", "--poll", "250ms", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	if s.item, err = s.desk.WaitItem(ctxT(t, 20*time.Second), s.proc.Pid()); err != nil {
		t.Fatalf("%v\n%s", err, s.proc.Log())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vpn-tray log:\n%s", s.proc.Log())
		}
	})
}

// vpn runs the CLI in the laptop with the same login cache as the tray.
func (s *session) vpn(args ...string) (string, error) {
	argv := append([]string{bins.VPN, "--state-dir", s.alice.StateDir}, args...)
	cmd := s.st.Laptop.Command(ctxT(s.t, time.Minute), argv...)
	cmd.Env = append(cmd.Environ(), "CLEARPATH_CONFIG_DIR="+s.cfgDir, "DISPLAY=", "WAYLAND_DISPLAY=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *session) click(label string) {
	s.t.Helper()
	if err := s.item.Click(ctxT(s.t, 5*time.Second), label); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) waitMenu(what string, cond func([]desktop.MenuItem) bool) []desktop.MenuItem {
	s.t.Helper()
	m, err := s.item.WaitMenu(ctxT(s.t, 40*time.Second), what, cond)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("menu (%s): %s", what, desktop.Labels(m))
	return m
}

// wantState checks the menu's state line now.
func (s *session) wantState(want string) {
	s.t.Helper()
	m, err := s.item.Layout(ctxT(s.t, 5*time.Second))
	if err != nil {
		s.t.Fatal(err)
	}
	if it, ok := desktop.Find(m, "ClearPath: "); !ok || it.Label != "ClearPath: "+want {
		s.t.Fatalf("menu state %q, want %q (menu: %s)", it.Label, "ClearPath: "+want, desktop.Labels(m))
	}
}

func connected(m []desktop.MenuItem) bool {
	_, ok := desktop.Find(m, "ClearPath: Connected")
	return ok && enabled(m, "Disconnect")
}

func disconnected(m []desktop.MenuItem) bool {
	_, ok := desktop.Find(m, "ClearPath: Disconnected")
	return ok && enabled(m, "Connect")
}

func enabled(m []desktop.MenuItem, label string) bool {
	it, ok := desktop.Find(m, label)
	return ok && it.Enabled
}

// browserLogin waits for the tray to open the login page, then logs in
// there with a real browser on the laptop.
func (s *session) browserLogin(user string) {
	t := s.t
	var loginURL string
	for deadline := time.Now().Add(15 * time.Second); loginURL == ""; {
		if b, _ := os.ReadFile(s.opened); len(b) > 0 {
			loginURL = strings.TrimSpace(strings.Split(string(b), "\n")[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tray never opened a browser:\n%s", s.proc.Log())
		}
		time.Sleep(25 * time.Millisecond)
	}
	u, err := url.Parse(loginURL)
	if err != nil || !strings.HasPrefix(loginURL, dex.Issuer) || u.Query().Get("code_challenge_method") != "S256" ||
		!strings.HasPrefix(u.Query().Get("redirect_uri"), "http://127.0.0.1:") {
		t.Fatalf("the tray opened %q, want the provider's login with PKCE and a loopback redirect", loginURL)
	}
	who, _ := dex.LookupUser(user)
	bctx := startBrowser(t, s.st.Laptop)
	start := time.Now()
	var page string
	if err := chromedp.Do(bctx, chromedp.Navigate(loginURL), testbrowser.DexLogin(who.Email, who.Password),
		chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatalf("browser: %v\n%s", err, s.proc.Log())
	}
	page, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil || !strings.Contains(page, "Logged in to ClearPath") {
		t.Fatalf("after logging in the browser shows %q (%v)", page, err)
	}
	t.Logf("browser login took %v", time.Since(start).Round(time.Millisecond))
}

// checkTunnelUp compares what the menu says with the agent's status and
// the laptop's interface, and returns the tunnel's IPv4 address.
func (s *session) checkTunnelUp(menu []desktop.MenuItem) netip.Addr {
	t := s.t
	st, raw, err := s.alice.Status(ctxT(t, 10*time.Second))
	if err != nil || st.State != "up" {
		t.Fatalf("vpn status after Connect: %v\n%s", err, raw)
	}
	addrs, err := s.alice.TunnelAddrs(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("tunnel interface %s: %v", s.alice.Iface, err)
	}
	var v4 netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = a
		}
	}
	if !netip.MustParsePrefix(lab.EngPool4).Contains(v4) {
		t.Fatalf("tunnel addresses %v, want one in %s", addrs, lab.EngPool4)
	}
	addr, _ := desktop.Find(menu, "Address: ")
	for _, a := range addrs {
		if !strings.Contains(addr.Label, a.String()) {
			t.Errorf("menu says %q, the tunnel has %s", addr.Label, a)
		}
	}
	if server, _ := desktop.Find(menu, "Server: "); server.Label != "Server: "+stack.GatewayListen+" (eng)" {
		t.Errorf("menu says %q, want the gateway and alice's network", server.Label)
	}
	return v4
}

func (s *session) checkTunnelDown(before string) {
	t := s.t
	if _, err := s.alice.TunnelAddrs(ctxT(t, 5*time.Second)); err == nil {
		t.Errorf("interface %s still exists after Disconnect", s.alice.Iface)
	}
	if got, err := s.st.Laptop.AskWhoAmI(ctxT(t, 2*time.Second), net.JoinHostPort(lab.VPCAIP4, "8000")); err == nil {
		t.Errorf("vpc-a still reachable after Disconnect (saw %s)", got)
	}
	after, err := s.st.Laptop.RoutingState(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("routing after Disconnect differs from before Connect:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// wantIcon checks that the tray shows the icon of state (the closest of
// the five icons to what the tray host received is that one).
func (s *session) wantIcon(want tray.State) {
	t := s.t
	t.Helper()
	var got tray.State
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		var img image.Image
		if img, err = s.item.Icon(ctxT(t, 5*time.Second)); err == nil {
			if got, err = closestIcon(img); err == nil && got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tray icon shows %s (%v), want %s", got, err, want)
}

func closestIcon(img image.Image) (tray.State, error) {
	best, bestD := tray.State(-1), math.Inf(1)
	for _, st := range []tray.State{tray.Disconnected, tray.Connecting, tray.Connected, tray.NeedsLogin, tray.Error} {
		ref, err := png.Decode(bytes.NewReader(ui.Icon(st).Content()))
		if err != nil {
			return best, err
		}
		if d := distance(img, ref); d < bestD {
			best, bestD = st, d
		}
	}
	return best, nil
}

// distance is the mean colour difference of two images of the same size.
func distance(a, b image.Image) float64 {
	if a.Bounds().Size() != b.Bounds().Size() {
		return math.Inf(1)
	}
	var sum float64
	ab, bb := a.Bounds(), b.Bounds()
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, a1 := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, a2 := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			for _, d := range []float64{float64(r1) - float64(r2), float64(g1) - float64(g2), float64(b1) - float64(b2), float64(a1) - float64(a2)} {
				sum += math.Abs(d)
			}
		}
	}
	return sum / float64(ab.Dx()*ab.Dy())
}

func (s *session) notified(prefix string) []desktop.Notification {
	var out []desktop.Notification
	for _, n := range s.desk.Notifications() {
		if strings.HasPrefix(n.Summary, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func (s *session) waitNotification(prefix string) desktop.Notification {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n := s.notified(prefix); len(n) > 0 {
			return n[0]
		}
	}
	s.t.Fatalf("no notification %q; got %+v", prefix, s.desk.Notifications())
	return desktop.Notification{}
}

// stableShot takes screenshots until two in a row are the same.
func (s *session) stableShot(grab func(context.Context) (image.Image, error)) image.Image {
	t := s.t
	t.Helper()
	prev, err := grab(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		time.Sleep(150 * time.Millisecond)
		cur, err := grab(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if desktop.Diff(prev, cur).Empty() {
			return cur
		}
		prev = cur
	}
	return prev
}

// screenshotMenu opens the tray menu the way a user does (right click on
// the icon in the tray bar) and saves the menu with the icon.
func (s *session) screenshotMenu(name string) {
	t := s.t
	base := s.stableShot(s.desk.Screenshot)
	icon := desktop.TrayIcons(base)
	if icon.Empty() {
		t.Fatal("the tray bar shows no icon")
	}
	c := image.Pt((icon.Min.X+icon.Max.X)/2, (icon.Min.Y+icon.Max.Y)/2)
	if err := s.desk.Click(ctxT(t, 5*time.Second), c.X, c.Y, 3); err != nil {
		t.Fatal(err)
	}
	var shot image.Image
	var menu image.Rectangle
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		shot = s.stableShot(s.desk.Screenshot)
		if menu = desktop.Diff(base, shot); menu.Dy() > 3*desktop.BarHeight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("right click on the tray icon at %v showed no menu (changed: %v)", c, menu)
		}
	}
	s.save(name, desktop.Crop(shot, menu.Union(icon), 12))
	if err := s.desk.Key(ctxT(t, 5*time.Second), "Escape"); err != nil {
		t.Fatal(err)
	}
}

// screenshotWindow opens a window from the menu and saves it.
func (s *session) screenshotWindow(label, title, name string) {
	t := s.t
	s.click(label)
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err = s.desk.Window(ctxT(t, 5*time.Second), title); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	// Let the window take a few polls (rates) or finish doctor's run; a
	// live window never holds still for stableShot.
	time.Sleep(2 * time.Second)
	shot, err := s.desk.WindowScreenshot(ctxT(t, 10*time.Second), title)
	if err != nil {
		t.Fatal(err)
	}
	s.save(name, shot)
}

// clickFix clicks the doctor window's Fix button (the one button drawn in
// the theme's primary colour) and waits for the leftover route to go.
func (s *session) clickFix() {
	t := s.t
	const title = "ClearPath doctor"
	shot, err := s.desk.WindowScreenshot(ctxT(t, 10*time.Second), title)
	if err != nil {
		t.Fatal(err)
	}
	b := desktop.FindColor(shot, ui.Primary, 12)
	if b.Dx() < 40 || b.Dy() < 15 {
		t.Fatalf("no Fix button in the doctor window (primary-coloured area %v)", b)
	}
	c := image.Pt((b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2)
	if err := s.desk.ClickWindow(ctxT(t, 5*time.Second), title, c.X, c.Y, 1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := s.st.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", "table", "7411")
		if err == nil && strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Fix clicked at %v: table 7411 still holds %q (%v)", c, out, err)
		}
	}
	if out, _ := s.st.Laptop.Exec(ctxT(t, 5*time.Second), "ip", "route", "show", "default"); !strings.Contains(out, lab.HostLANIP4) {
		t.Errorf("the fix touched the default route: %q", out)
	}
}

func (s *session) save(name string, img image.Image) {
	p := filepath.Join(s.shots, name)
	if err := desktop.SavePNG(p, img); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("saved %s (%dx%d)", p, img.Bounds().Dx(), img.Bounds().Dy())
}
