package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/tray"
	"github.com/clearpath-vpn/clearpath/tray/internal/agenttest"
)

// host records what the tray hands the desktop's tray host.
type host struct {
	mu    sync.Mutex
	menus []*fyne.Menu
	icons []fyne.Resource
}

func (h *host) SetSystemTrayMenu(m *fyne.Menu) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.menus = append(h.menus, m)
}

func (h *host) SetSystemTrayIcon(r fyne.Resource) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.icons = append(h.icons, r)
}

func (h *host) last() (*fyne.Menu, fyne.Resource, int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.menus[len(h.menus)-1], h.icons[len(h.icons)-1], len(h.menus), len(h.icons)
}

// labels renders a fyne menu as "(disabled) | enabled | -- | [x] checked".
func labels(m *fyne.Menu) string {
	var out []string
	for _, it := range m.Items {
		switch {
		case it.IsSeparator:
			out = append(out, "--")
		case it.Disabled:
			out = append(out, "("+it.Label+")")
		case it.Checked:
			out = append(out, "[x] "+it.Label)
		default:
			out = append(out, it.Label)
		}
	}
	return strings.Join(out, " | ")
}

func item(t *testing.T, m *fyne.Menu, label string) *fyne.MenuItem {
	t.Helper()
	for _, it := range m.Items {
		if it.Label == label {
			return it
		}
	}
	t.Fatalf("no %q in menu %s", label, labels(m))
	return nil
}

func TestBuildMenuFromTheModel(t *testing.T) {
	test.NewTempApp(t)
	v := tray.View{State: tray.Connected, Agent: true, Server: "https://vpn.example.com", Network: "ops", Networks: []string{"eng", "ops"},
		Status: control.Status{State: control.StateUp, Addresses: []string{"100.65.0.7/32"}},
		Login:  tray.LoginState{Supported: true, LoggedIn: true, Who: "erin@example.com"}}
	var clicked []string
	m := BuildMenu(tray.Menu(v), func(id string) { clicked = append(clicked, id) })
	want := "(ClearPath: Connected) | (Address: 100.65.0.7) | (Server: vpn.example.com (ops)) | -- | Disconnect | Log out erin@example.com | Network | Connection options | -- | Open status window | Run doctor | (Restore routes) | -- | Quit"
	if got := labels(m); got != want {
		t.Fatalf("menu\n got: %s\nwant: %s", got, want)
	}
	nets := item(t, m, "Network")
	if nets.ChildMenu == nil || labels(nets.ChildMenu) != "eng | [x] ops" || nets.Action != nil {
		t.Fatalf("network submenu: %+v", nets.ChildMenu)
	}
	if !item(t, m, "Quit").IsQuit {
		t.Fatal("Quit is not the menu's quit item: fyne would add a second one")
	}
	item(t, m, "Disconnect").Action()
	nets.ChildMenu.Items[0].Action()
	item(t, m, "Quit").Action()
	if got := strings.Join(clicked, ","); got != "disconnect,network:eng,quit" {
		t.Fatalf("clicks reached the controller as %s", got)
	}
}

// rig is a controller on a stand-in agent (real control socket), with a
// clock the test moves.
type rig struct {
	agent *agenttest.Agent
	ctl   *tray.Controller
	mu    sync.Mutex
	now   time.Time
}

func newRig(t *testing.T) *rig {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("tok-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &rig{agent: agenttest.New(dir), now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}
	t.Cleanup(r.agent.Stop)
	r.ctl = tray.NewController(tray.Settings{UpOptions: local.UpOptions{Server: "http://198.51.100.1:8080"}}, tray.Deps{
		Agent:      tray.NewAgent(dir),
		StartAgent: func(context.Context) error { return r.agent.Start() },
		Tokens:     tray.FileTokens{Path: tok},
		Now: func() time.Time {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.now
		},
	})
	return r
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

// The tray follows the controller: a menu and icon per state, set again
// only when they change; clicks run the actions; the status window is
// live; a failed action is notified; Quit quits.
func TestTrayConnectDisconnectAndLiveStatus(t *testing.T) {
	a := test.NewTempApp(t)
	r := newRig(t)
	ctx := context.Background()
	h := &host{}
	quit := 0
	tr := NewTray(ctx, a, h, r.ctl, func() { quit++ }, nil)
	tr.Start()
	m, icon, menus, icons := h.last()
	if labels(m) != "(ClearPath: Disconnected) | (Server: 198.51.100.1:8080) | -- | Connect | Connection options | -- | Open status window | Run doctor | Restore routes | -- | Quit" {
		t.Fatalf("disconnected menu: %s", labels(m))
	}
	if icon != Icon(tray.Disconnected) {
		t.Fatalf("icon %s", icon.Name())
	}
	r.ctl.Refresh(ctx)
	if _, _, n, i := h.last(); n != menus || i != icons {
		t.Fatalf("an unchanged view set the menu or icon again (%d menus, %d icons)", n, i)
	}

	// The connection options submenu: a click checks "Route LAN".
	opts := item(t, m, "Connection options").ChildMenu
	if opts == nil || labels(opts) != "Send all traffic through the tunnel | Route LAN through the tunnel" {
		t.Fatalf("options submenu: %v", opts)
	}
	tr.Click(tray.ItemRouteLAN)
	tr.Wait()
	m, _, _, _ = h.last()
	if got := labels(item(t, m, "Connection options").ChildMenu); got != "Send all traffic through the tunnel | [x] Route LAN through the tunnel" {
		t.Fatalf("after clicking Route LAN: %s", got)
	}

	tr.Click(tray.ItemStatus)
	sp := tr.StatusPanel()
	if sp == nil || sp.Title() != "ClearPath: Disconnected" || sp.Routes() != "none" {
		t.Fatalf("status window: %v", sp)
	}

	tr.Click(tray.ItemConnect)
	tr.Wait()
	m, icon, _, _ = h.last()
	if it := item(t, m, "Disconnect"); it.Disabled || icon != Icon(tray.Connected) {
		t.Fatalf("after Connect: menu %s, icon %s", labels(m), icon.Name())
	}
	if got, _ := sp.Field("Addresses"); got != "100.64.0.2/32, fd00:64::2/128 on cp0" {
		t.Fatalf("status window addresses %q", got)
	}
	if !strings.Contains(sp.Routes(), "10.10.0.0/16 dev cp0 table 7411") || !strings.Contains(sp.Overlaps(), "the LAN wins") {
		t.Fatalf("routes %q, overlaps %q", sp.Routes(), sp.Overlaps())
	}
	// Live: two seconds and 8 KiB later the rate shows.
	r.ctl.Refresh(ctx)
	r.advance(2 * time.Second)
	r.agent.Set(func(s *control.Status) { s.RxBytes += 8192 })
	r.ctl.Refresh(ctx)
	if got, _ := sp.Field("Receiving"); !strings.HasPrefix(got, "4.0 KiB/s") {
		t.Fatalf("receiving %q, want 4.0 KiB/s", got)
	}

	tr.Click(tray.ItemDisconnect)
	tr.Wait()
	m, icon, _, _ = h.last()
	if it := item(t, m, "Connect"); it.Disabled || icon != Icon(tray.Disconnected) || sp.Title() != "ClearPath: Disconnected" {
		t.Fatalf("after Disconnect: menu %s, icon %s, window %q", labels(m), icon.Name(), sp.Title())
	}

	// "Restore routes": no agent runs after the Disconnect, so the tray
	// starts one and asks it over the socket; the agent's refusal while a
	// session runs is the tray package's test.
	r.agent.Leftovers = 2
	tr.Click(tray.ItemRestore)
	tr.Wait()
	if n := r.agent.RestoreCalls(); n != 1 {
		t.Fatalf("Restore routes reached the agent %d times", n)
	}
	m, _, _, _ = h.last()
	if it := item(t, m, "Restore routes"); it.Disabled {
		t.Fatalf("after Restore routes: menu %s", labels(m))
	}

	r.agent.StartT(t)
	r.agent.UpErr = errors.New("tunnel to 198.51.100.1:51820 did not carry traffic")
	test.AssertNotificationSent(t, &fyne.Notification{Title: "ClearPath: Connect failed", Content: "tunnel to 198.51.100.1:51820 did not carry traffic"}, func() {
		tr.Click(tray.ItemConnect)
		tr.Wait()
	})
	if _, icon, _, _ := h.last(); icon != Icon(tray.Error) {
		t.Fatalf("failed connect shows icon %s", icon.Name())
	}

	tr.Click(tray.ItemQuit)
	if quit != 1 {
		t.Fatalf("quit ran %d times", quit)
	}
}

// Doctor's window: findings with severity and evidence, a Fix button for
// the fixable one only, Fix runs and shows the new report, "Copy report"
// puts the JSON on the clipboard, and a failed fix says why.
func TestDoctorPanel(t *testing.T) {
	a := test.NewTempApp(t)
	leftover := analysis.Finding{ID: "leftover-owned", Severity: analysis.Error, Owner: "clearpath", Fixable: true, Ours: true,
		Title:       "1 routes and 2 rules of ClearPath remain, but no agent runs",
		Evidence:    []analysis.Evidence{{Kind: "route", Text: "throw 10.1.2.0/24 table 7411 proto 197"}},
		Explanation: "A ClearPath session ended without cleaning up.",
		Commands:    []string{"ip route del throw 10.1.2.0/24 table 7411 proto 197"}}
	overlap := analysis.Finding{ID: "subnet-overlap", Severity: analysis.Info, Title: "10.0.0.0/8 overlaps the LAN"}
	broken := analysis.Report{Schema: "clearpath.doctor/v1", OS: "linux", Findings: []analysis.Finding{leftover, overlap},
		Summary: analysis.Summary{Errors: 1, Infos: 1}}
	var mu sync.Mutex
	var fixed []string
	fixErr := error(nil)
	p := NewDoctorPanel(
		func(context.Context) (analysis.Report, error) { return broken, nil },
		func(_ context.Context, id string) (analysis.Report, error) {
			mu.Lock()
			defer mu.Unlock()
			fixed = append(fixed, id)
			if fixErr != nil {
				return broken, fixErr
			}
			return analysis.Report{Schema: broken.Schema, Findings: []analysis.Finding{overlap}, Summary: analysis.Summary{Infos: 1, Healthy: true}}, nil
		}, a.Clipboard())
	w := a.NewWindow("doctor")
	w.SetContent(p.Content())
	w.Resize(fyne.NewSize(700, 500))

	p.Run()
	p.Wait()
	if p.SummaryText() != "1 error, 0 warnings, 1 note" || p.Findings() != 2 {
		t.Fatalf("summary %q, %d findings", p.SummaryText(), p.Findings())
	}
	if p.FixButton("subnet-overlap") != nil {
		t.Fatal("an info finding got a Fix button")
	}
	if !strings.Contains(test.RenderObjectToMarkup(p.Content()), "throw 10.1.2.0/24 table 7411 proto 197") {
		t.Fatal("the evidence is not shown")
	}

	test.Tap(p.CopyButton())
	var copied analysis.Report
	if err := json.Unmarshal([]byte(a.Clipboard().Content()), &copied); err != nil || copied.Schema != "clearpath.doctor/v1" ||
		len(copied.Findings) != 2 || copied.Findings[0].ID != "leftover-owned" || copied.Findings[0].Evidence[0].Text != leftover.Evidence[0].Text {
		t.Fatalf("copied report %q: %v", a.Clipboard().Content(), err)
	}

	mu.Lock()
	fixErr = errors.New("vpn doctor --fix=leftover-owned did not repair it: permission denied")
	mu.Unlock()
	test.Tap(p.FixButton("leftover-owned"))
	p.Wait()
	if !strings.Contains(p.SummaryText(), "permission denied") || p.FixButton("leftover-owned").Disabled() {
		t.Fatalf("failed fix: summary %q, button disabled %v", p.SummaryText(), p.FixButton("leftover-owned").Disabled())
	}
	mu.Lock()
	fixErr = nil
	mu.Unlock()
	test.Tap(p.FixButton("leftover-owned"))
	p.Wait()
	if p.SummaryText() != "✓ Routing looks healthy (1 note)" || p.Findings() != 1 || p.FixButton("leftover-owned") != nil {
		t.Fatalf("after the fix: %q, %d findings", p.SummaryText(), p.Findings())
	}
	if strings.Join(fixed, ",") != "leftover-owned,leftover-owned" {
		t.Fatalf("fixes run: %v", fixed)
	}
}

func TestStatusPanelSaysWhy(t *testing.T) {
	test.NewTempApp(t)
	p := NewStatusPanel()
	p.Update(tray.View{State: tray.NeedsLogin, Reason: "gateway refused (401 invalid_token): token is expired", Server: "https://gw",
		Login: tray.LoginState{Supported: true}})
	if got, _ := p.Field("Why"); !strings.Contains(got, "token is expired") || p.Title() != "ClearPath: Not logged in" {
		t.Fatalf("why %q, title %q", got, p.Title())
	}
	if _, ok := p.Field("Addresses"); ok {
		t.Fatal("addresses shown while not connected")
	}
}

// Five icons, one per state, each a 64x64 PNG unlike the others (the
// state reads from the icon alone).
func TestIconsDifferPerState(t *testing.T) {
	states := []tray.State{tray.Disconnected, tray.Connecting, tray.Connected, tray.NeedsLogin, tray.Error}
	seen := map[string]tray.State{}
	for _, s := range states {
		r := Icon(s)
		img, err := png.Decode(bytes.NewReader(r.Content()))
		if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
			t.Fatalf("%s icon: %v %v", s, img.Bounds(), err)
		}
		if prev, dup := seen[string(r.Content())]; dup {
			t.Fatalf("%s and %s share an icon", s, prev)
		}
		seen[string(r.Content())] = s
		// The disc's colour, left of every glyph.
		if _, _, _, alpha := img.At(10, 32).RGBA(); alpha == 0 {
			t.Fatalf("%s icon is transparent where its disc should be", s)
		}
	}
}
