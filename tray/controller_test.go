package tray

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/tray/internal/agenttest"
)

// rig is a controller wired to a stand-in agent on a real control socket,
// a real token file and a recorded notification list.
type rig struct {
	t      *testing.T
	agent  *agenttest.Agent
	ctl    *Controller
	token  string
	now    time.Time
	mu     sync.Mutex
	notes  []Notification
	views  []View
	starts int
	doctor *scriptedDoctor
}

type scriptedDoctor struct {
	mu    sync.Mutex
	rep   analysis.Report
	seq   []analysis.Report // answered first, in order, then rep
	calls int
	fixed []string
}

func (d *scriptedDoctor) Check(context.Context) (analysis.Report, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if len(d.seq) > 0 {
		rep := d.seq[0]
		d.seq = d.seq[1:]
		return rep, nil
	}
	return d.rep, nil
}

func (d *scriptedDoctor) checks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

func (d *scriptedDoctor) Fix(_ context.Context, id string) (analysis.Report, error) {
	d.mu.Lock()
	d.fixed = append(d.fixed, id)
	d.rep.Findings = nil
	d.mu.Unlock()
	return d.Check(context.Background())
}

func newRig(t *testing.T, set Settings) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, agent: agenttest.New(dir), now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), doctor: &scriptedDoctor{}}
	r.token = filepath.Join(dir, "token")
	if err := os.WriteFile(r.token, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.agent.Stop)
	if set.Server == "" {
		set.Server = "http://198.51.100.1:8080"
	}
	r.ctl = NewController(set, Deps{
		Agent: NewAgent(dir),
		StartAgent: func(context.Context) error {
			r.mu.Lock()
			r.starts++
			r.mu.Unlock()
			return r.agent.Start()
		},
		Tokens: FileTokens{Path: r.token},
		Doctor: r.doctor,
		Notify: func(n Notification) {
			r.mu.Lock()
			r.notes = append(r.notes, n)
			r.mu.Unlock()
		},
		Now: func() time.Time {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.now
		},
	})
	r.ctl.Subscribe(func(v View) {
		r.mu.Lock()
		r.views = append(r.views, v)
		r.mu.Unlock()
	})
	return r
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

func (r *rig) notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.notes...)
}

func (r *rig) states() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []State
	for _, v := range r.views {
		if len(out) == 0 || out[len(out)-1] != v.State {
			out = append(out, v.State)
		}
	}
	return out
}

func menuLabel(t *testing.T, v View, id string) string {
	t.Helper()
	it, ok := Find(Menu(v), id)
	if !ok {
		t.Fatalf("menu has no %q item in state %s: %+v", id, v.State, Menu(v))
	}
	return it.Label
}

func TestConnectStartsAgentAndDisconnectStopsIt(t *testing.T) {
	r := newRig(t, Settings{UpOptions: local.UpOptions{Interface: "cptest0", Network: "eng", Timeout: 7 * time.Second,
		MTU: "1380", MaxPrefixes: 40, FailClosed: true, BlockLAN: true}})
	ctx := context.Background()
	if v := r.ctl.Refresh(ctx); v.State != Disconnected || v.Agent {
		t.Fatalf("no agent: want disconnected, got %s (agent %v)", v.State, v.Agent)
	}
	if got := menuLabel(t, r.ctl.View(), ItemConnect); got != "Connect" {
		t.Fatalf("disconnected menu offers %q", got)
	}

	// Hold the agent in "connecting" to see the tray show it.
	r.agent.Gate = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.ctl.Connect(ctx) }()
	waitFor(t, func() bool { return len(r.agent.UpCalls()) == 1 })
	if v := r.ctl.Refresh(ctx); v.State != Connecting || menuLabel(t, v, ItemConnect) != "Connecting…" {
		t.Fatalf("while the agent connects: state %s, menu %+v", v.State, Menu(v))
	}
	close(r.agent.Gate)
	if err := <-done; err != nil {
		t.Fatalf("connect: %v", err)
	}
	if r.starts != 1 {
		t.Fatalf("agent starts: %d, want 1 (none was running)", r.starts)
	}
	req := r.agent.UpCalls()[0]
	if req.Token != "tok-123" || req.Interface != "cptest0" || req.Network != "eng" || req.Timeout != 7*time.Second || req.Server != "http://198.51.100.1:8080" ||
		req.MTU != 1380 || req.MaxPrefixes != 40 || !req.FailClosed || !req.BlockLAN || req.TokenFile != "" {
		t.Fatalf("up request: %+v", req)
	}
	v := r.ctl.View()
	if v.State != Connected {
		t.Fatalf("after connect: %s (%s)", v.State, v.Reason)
	}
	if got := menuLabel(t, v, ItemDisconnect); got != "Disconnect" {
		t.Fatalf("connected menu offers %q", got)
	}
	if got := menuLabel(t, v, ItemAddress); got != "Address: 100.64.0.2, fd00:64::2" {
		t.Fatalf("address line %q", got)
	}
	if got := menuLabel(t, v, ItemServer); got != "Server: 198.51.100.1:8080 (eng)" {
		t.Fatalf("server line %q", got)
	}
	if s := r.states(); len(s) < 3 || s[0] != Disconnected || s[len(s)-1] != Connected || !contains(s, Connecting) {
		t.Fatalf("state sequence %v, want disconnected … connecting … connected", s)
	}

	if err := r.ctl.Disconnect(ctx); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if r.agent.DownCalls() != 1 {
		t.Fatalf("downs: %d", r.agent.DownCalls())
	}
	waitFor(t, func() bool { return !r.agent.Running() }) // the agent exits after down
	if v := r.ctl.Refresh(ctx); v.State != Disconnected {
		t.Fatalf("after disconnect: %s (%s)", v.State, v.Reason)
	}
	for _, n := range r.notifications() {
		if n.Kind == NoteDisconnect {
			t.Fatalf("a disconnect the user clicked must not be notified: %+v", n)
		}
	}
	// Disconnect is idempotent: nothing runs, nothing fails.
	if err := r.ctl.Disconnect(ctx); err != nil {
		t.Fatalf("second disconnect: %v", err)
	}
}

func TestUnexpectedDisconnectIsNotified(t *testing.T) {
	r := newRig(t, Settings{})
	ctx := context.Background()
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	r.agent.Stop() // the agent dies, or `vpn down` ran in a terminal
	v := r.ctl.Refresh(ctx)
	if v.State != Disconnected {
		t.Fatalf("state %s", v.State)
	}
	notes := r.notifications()
	if len(notes) != 1 || notes[0].Kind != NoteDisconnect || !strings.Contains(notes[0].Body, "agent stopped") {
		t.Fatalf("notifications: %+v", notes)
	}
	r.ctl.Refresh(ctx)
	if len(r.notifications()) != 1 {
		t.Fatalf("the disconnect was notified twice: %+v", r.notifications())
	}
}

func TestFailedConnectShowsTheAgentsReason(t *testing.T) {
	r := newRig(t, Settings{})
	r.agent.StartT(t)
	ctx := context.Background()
	r.agent.UpErr = errors.New("tunnel to 198.51.100.1:51820 did not carry traffic: no reply")
	err := r.ctl.Connect(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not carry traffic") {
		t.Fatalf("connect error: %v", err)
	}
	v := r.ctl.View()
	if v.State != Error || !strings.Contains(v.Reason, "did not carry traffic") {
		t.Fatalf("view: %s %q", v.State, v.Reason)
	}
	if it, _ := Find(Menu(v), ItemReason); !strings.Contains(it.Label, "did not carry traffic") {
		t.Fatalf("the menu must say why: %+v", Menu(v))
	}
	if got := menuLabel(t, v, ItemConnect); got != "Connect" {
		t.Fatalf("retry offered as %q", got)
	}
	// The error stays visible across polls (the agent keeps it too)...
	if v := r.ctl.Refresh(ctx); v.State != Error {
		t.Fatalf("after a poll: %s", v.State)
	}
	// ...until the next attempt succeeds.
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if v := r.ctl.View(); v.State != Connected || v.Reason != "" {
		t.Fatalf("after retry: %s %q", v.State, v.Reason)
	}
}

func TestRefusedTokenNeedsLogin(t *testing.T) {
	r := newRig(t, Settings{})
	r.agent.StartT(t)
	r.agent.UpErr = errors.New("register with http://gw: gateway refused (401 invalid_token): token is expired")
	if err := r.ctl.Connect(context.Background()); err == nil {
		t.Fatal("connect with a refused token succeeded")
	}
	if v := r.ctl.View(); v.State != NeedsLogin || !strings.Contains(v.Reason, "token is expired") {
		t.Fatalf("view: %s %q", v.State, v.Reason)
	}
}

func TestEmptyTokenFileNeedsLoginAndAgentIsNotAsked(t *testing.T) {
	r := newRig(t, Settings{})
	r.agent.StartT(t)
	os.WriteFile(r.token, []byte("  \n"), 0o600)
	err := r.ctl.Connect(context.Background())
	if !errors.Is(err, ErrLoginRequired) || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("connect: %v", err)
	}
	if n := len(r.agent.UpCalls()); n != 0 {
		t.Fatalf("the agent got %d up requests without a token", n)
	}
	if v := r.ctl.View(); v.State != NeedsLogin {
		t.Fatalf("state %s", v.State)
	}
}

func TestSeveralNetworksOfferAChoice(t *testing.T) {
	r := newRig(t, Settings{})
	r.agent.StartT(t)
	ctx := context.Background()
	r.agent.UpErr = errors.New("register with http://gw: gateway refused (409 network_required): you are in several networks [networks: eng, ops]")
	if err := r.ctl.Connect(ctx); err == nil || !strings.Contains(err.Error(), "pick one under Network") {
		t.Fatalf("connect: %v", err)
	}
	v := r.ctl.View()
	sub, ok := Find(Menu(v), ItemNetwork)
	if !ok || len(sub.Children) != 2 || sub.Children[0].Label != "eng" || sub.Children[1].Label != "ops" {
		t.Fatalf("network submenu: %+v", sub)
	}
	if err := r.ctl.SelectNetwork(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if it, _ := Find(Menu(r.ctl.View()), NetworkPrefix+"ops"); !it.Checked {
		t.Fatalf("ops not checked after choosing it: %+v", it)
	}
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ups := r.agent.UpCalls()
	if ups[len(ups)-1].Network != "ops" {
		t.Fatalf("up asked for network %q", ups[len(ups)-1].Network)
	}
	// Switching while connected reconnects to the other network.
	if err := r.ctl.SelectNetwork(ctx, "eng"); err != nil {
		t.Fatal(err)
	}
	ups = r.agent.UpCalls()
	if r.agent.DownCalls() != 1 || ups[len(ups)-1].Network != "eng" || r.ctl.View().Status.Network != "eng" {
		t.Fatalf("switch: downs %d, last up %+v, view %q", r.agent.DownCalls(), ups[len(ups)-1], r.ctl.View().Status.Network)
	}
	if err := r.ctl.SelectNetwork(ctx, "nope"); err == nil {
		t.Fatal("an unknown network was accepted")
	}
}

func TestRatesAndExpiryNotification(t *testing.T) {
	r := newRig(t, Settings{ExpiryWarning: time.Hour})
	ctx := context.Background()
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	r.ctl.Refresh(ctx)
	r.advance(2 * time.Second)
	r.agent.Set(func(s *control.Status) { s.RxBytes += 4096; s.TxBytes += 1024 })
	v := r.ctl.Refresh(ctx)
	if v.RxRate != 2048 || v.TxRate != 512 {
		t.Fatalf("rates rx %v tx %v, want 2048 and 512 B/s", v.RxRate, v.TxRate)
	}
	if got := rowValue(StatusRows(v), "Receiving"); got != "2.0 KiB/s (5.0 KiB total)" {
		t.Fatalf("receiving row %q", got)
	}
	for _, n := range r.notifications() {
		if n.Kind == NoteExpiry {
			t.Fatalf("expiry notified 12h ahead: %+v", n)
		}
	}
	exp := r.now.Add(40 * time.Minute)
	r.agent.Set(func(s *control.Status) { s.ExpiresAt = &exp })
	r.ctl.Refresh(ctx)
	r.ctl.Refresh(ctx)
	var got []Notification
	for _, n := range r.notifications() {
		if n.Kind == NoteExpiry {
			got = append(got, n)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0].Body, "in 40m0s") {
		t.Fatalf("expiry notifications: %+v", got)
	}
}

func TestDoctorAfterNetworkChangeNotifiesNewProblemsOnce(t *testing.T) {
	r := newRig(t, Settings{DoctorDelay: 10 * time.Millisecond, Poll: time.Hour})
	r.doctor.rep = analysis.Report{Findings: []analysis.Finding{
		{ID: "dead-device-route", Severity: analysis.Error, Title: "10.9.0.0/16 points at a device that is gone"},
		{ID: "ipv6-leak", Severity: analysis.Warning, Title: "IPv6 bypasses the tunnel"},
		{ID: "overlap", Severity: analysis.Info, Title: "an overlap, handled"},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 1)
	go r.ctl.Run(ctx, changes)
	changes <- struct{}{}
	waitFor(t, func() bool { return len(r.notifications()) == 1 })
	n := r.notifications()[0]
	if n.Kind != NoteDoctor || n.Title != "ClearPath doctor found 2 problems" || !strings.HasPrefix(n.Body, "10.9.0.0/16 points at a device that is gone (and 1 more)") {
		t.Fatalf("notification %+v", n)
	}
	// The same problems after the next change: no second notification.
	changes <- struct{}{}
	time.Sleep(200 * time.Millisecond)
	if len(r.notifications()) != 1 {
		t.Fatalf("repeated: %+v", r.notifications())
	}
	if _, err := r.ctl.Fix(ctx, "dead-device-route"); err != nil || r.doctor.fixed[0] != "dead-device-route" {
		t.Fatalf("fix: %v %v", err, r.doctor.fixed)
	}
}

// A problem seen once, in the middle of a change (a tunnel half set up),
// is not notified; one that is still there a moment later is. While the
// user's own action runs, doctor does not run at all.
func TestDoctorNotifiesOnlyProblemsThatStay(t *testing.T) {
	r := newRig(t, Settings{DoctorDelay: 10 * time.Millisecond, DoctorConfirm: 50 * time.Millisecond, Poll: time.Hour})
	orphan := analysis.Report{Findings: []analysis.Finding{{ID: "orphan-rule", Severity: analysis.Warning, Title: "2 policy rules point at empty routing tables"}}}
	r.doctor.seq = []analysis.Report{orphan}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan struct{}, 1)
	go r.ctl.Run(ctx, changes)
	changes <- struct{}{}
	waitFor(t, func() bool { return r.doctor.checks() == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := r.notifications(); len(n) != 0 {
		t.Fatalf("a passing problem was notified: %+v", n)
	}

	// While a connect runs, a network change does not run doctor yet.
	r.agent.StartT(t)
	r.agent.Gate = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.ctl.Connect(ctx) }()
	waitFor(t, func() bool { return len(r.agent.UpCalls()) == 1 })
	r.doctor.rep = orphan
	changes <- struct{}{}
	time.Sleep(200 * time.Millisecond)
	if c := r.doctor.checks(); c != 2 {
		t.Fatalf("doctor ran %d times during a connect", c-2)
	}
	close(r.agent.Gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Once the connect is done, the change skipped meanwhile is looked at.
	waitFor(t, func() bool { return len(r.notifications()) == 1 })
	if n := r.notifications()[0]; n.Kind != NoteDoctor || !strings.HasPrefix(n.Body, "2 policy rules point at empty routing tables") {
		t.Fatalf("notification %+v", n)
	}
}

func TestActionsRunOneAtATime(t *testing.T) {
	r := newRig(t, Settings{})
	r.agent.StartT(t)
	r.agent.Gate = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.ctl.Connect(context.Background()) }()
	waitFor(t, func() bool { return len(r.agent.UpCalls()) == 1 })
	if err := r.ctl.Disconnect(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("disconnect during connect: %v", err)
	}
	close(r.agent.Gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNoAgentAndCannotStartOne(t *testing.T) {
	r := newRig(t, Settings{})
	r.ctl.d.StartAgent = nil
	err := r.ctl.Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no agent is running") {
		t.Fatalf("connect: %v", err)
	}
	if v := r.ctl.View(); v.State != Error {
		t.Fatalf("state %s", v.State)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(s []State, x State) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func rowValue(rows []Row, label string) string {
	for _, r := range rows {
		if r.Label == label {
			return r.Value
		}
	}
	return ""
}

func TestRouteLANIsSentAndNoticesReachTheUser(t *testing.T) {
	r := newRig(t, Settings{UpOptions: local.UpOptions{RouteLAN: true}})
	r.agent.StartT(t)
	// A gateway pushing a default route, and the <b> a hostile network
	// name could bring: the notice must be shown, once per connection.
	r.agent.Pushed = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.10.0.0/16")}
	ctx := context.Background()
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	req := r.agent.UpCalls()[0]
	if !req.RouteLAN || req.AllTraffic {
		t.Fatalf("up request: route_lan %v all_traffic %v, want the tray's --route-lan only", req.RouteLAN, req.AllTraffic)
	}
	// Polls after connecting must not repeat the notification.
	r.ctl.Refresh(ctx)
	r.ctl.Refresh(ctx)
	var got []Notification
	for _, n := range r.notifications() {
		if n.Kind == NoteNotice {
			got = append(got, n)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0].Body, "0.0.0.0/0") || !strings.Contains(got[0].Body, "--all-traffic") {
		t.Fatalf("notice notifications: %+v, want one naming 0.0.0.0/0 and --all-traffic", got)
	}
	var row string
	for _, rw := range StatusRows(r.ctl.View()) {
		if rw.Label == "Notice" {
			row = rw.Value
		}
	}
	if row != got[0].Body {
		t.Fatalf("status window notice %q, want %q", row, got[0].Body)
	}
	if r.ctl.View().Status.FullTunnel {
		t.Fatal("a dropped default route must not show as full tunnel")
	}

	// A new connection tells again; with all traffic accepted there is no notice.
	if err := r.ctl.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !r.agent.Running() })
	r.ctl.set.AllTraffic = true
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	if v := r.ctl.View(); len(v.Status.Notices) != 0 || !v.Status.FullTunnel {
		t.Fatalf("with all traffic accepted: notices %v full %v", v.Status.Notices, v.Status.FullTunnel)
	}
	n := 0
	for _, x := range r.notifications() {
		if x.Kind == NoteNotice {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("notice notifications after an accepted capture: %d, want still 1", n)
	}
}

// The menu's connection options are the flags' runtime equivalent: they
// start from Settings, toggle while disconnected, reach the UpRequest, and
// are fixed (disabled, refused) while the tunnel is up.
func TestConnectionOptionsFromTheMenu(t *testing.T) {
	r := newRig(t, Settings{UpOptions: local.UpOptions{AllTraffic: true}})
	r.agent.StartT(t)
	ctx := context.Background()
	v := r.ctl.Refresh(ctx)
	all, _ := Find(Menu(v), ItemAllTraffic)
	lan, _ := Find(Menu(v), ItemRouteLAN)
	if !all.Checked || lan.Checked || all.Disabled || lan.Disabled {
		t.Fatalf("disconnected, --all-traffic: all %+v, lan %+v", all, lan)
	}
	if err := r.ctl.ToggleOption(ctx, ItemRouteLAN); err != nil {
		t.Fatal(err)
	}
	if err := r.ctl.ToggleOption(ctx, ItemAllTraffic); err != nil {
		t.Fatal(err)
	}
	if lan, _ := Find(Menu(r.ctl.View()), ItemRouteLAN); !lan.Checked {
		t.Fatalf("route LAN not checked after the click: %+v", lan)
	}
	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if req := r.agent.UpCalls()[0]; !req.RouteLAN || req.AllTraffic {
		t.Fatalf("up request: route_lan %v all_traffic %v, want true false", req.RouteLAN, req.AllTraffic)
	}
	if lan, _ := Find(Menu(r.ctl.View()), ItemRouteLAN); !lan.Disabled || !lan.Checked {
		t.Fatalf("connected: the option must show what was asked, fixed: %+v", lan)
	}
	if err := r.ctl.ToggleOption(ctx, ItemRouteLAN); err == nil || !strings.Contains(err.Error(), "disconnect first") {
		t.Fatalf("toggle while connected: %v", err)
	}
	if !r.ctl.View().RouteLAN {
		t.Fatal("a refused toggle changed the option")
	}
	if err := r.ctl.ToggleOption(ctx, "bogus"); err == nil {
		t.Fatal("unknown option accepted")
	}
}
