package tray

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Settings are the tray's choices, from its flags.
type Settings struct {
	// UpOptions are the up flags the tray shares with `vpn up` (Server,
	// Network, --all-traffic, --mtu, ...), passed to the agent as `vpn up`
	// passes them; AllTraffic and RouteLAN can be toggled from the menu.
	// TokenFile is read by the tokens source (FileTokens), not sent.
	local.UpOptions
	Networks []string // known networks to offer before the gateway names them
	// Poll is how often the agent's status is read (live status window).
	Poll time.Duration
	// ExpiryWarning is how long before the peer expires to notify.
	ExpiryWarning time.Duration
	// DoctorDelay is how long a network change must settle before doctor
	// runs (DHCP, docker and VPNs change several things in a row).
	DoctorDelay time.Duration
	// DoctorConfirm is how long after finding problems doctor looks again:
	// only problems seen both times are notified, so the half-made state of
	// a tunnel going up or down at that moment is not reported.
	DoctorConfirm time.Duration
}

// Deps are the effects the controller drives.
type Deps struct {
	Agent Agent
	// StartAgent starts an agent when none runs; nil when this process
	// cannot (then Connect says so).
	StartAgent func(ctx context.Context) error
	Tokens     Tokens
	Doctor     Doctor
	// Notify shows a desktop notification; nil drops them.
	Notify func(Notification)
	Now    func() time.Time
}

// Controller is the tray's state machine: it polls the agent, derives the
// view, runs the user's actions one at a time, and tells subscribers.
type Controller struct {
	set Settings
	d   Deps

	refreshMu sync.Mutex // one refresh at a time, so views are published in order

	mu       sync.Mutex
	busy     Action
	lastErr  error
	network  string
	networks []string
	view     View
	prev     counters
	note     notifier
	subs     []func(View)
	doctorOn bool
}

type counters struct {
	iface  string
	rx, tx int64
	at     time.Time
}

// ErrBusy is returned when an action is asked for while another runs.
var ErrBusy = errors.New("another action is still running")

// NewController returns a controller; call Refresh or Run to start it.
func NewController(set Settings, d Deps) *Controller {
	if set.Poll <= 0 {
		set.Poll = time.Second
	}
	if set.Timeout <= 0 {
		set.Timeout = local.DefaultUpTimeout
	}
	if set.ExpiryWarning <= 0 {
		set.ExpiryWarning = time.Hour
	}
	if set.DoctorDelay <= 0 {
		set.DoctorDelay = 2 * time.Second
	}
	if set.DoctorConfirm <= 0 {
		set.DoctorConfirm = time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Notify == nil {
		d.Notify = func(Notification) {}
	}
	c := &Controller{set: set, d: d, network: set.Network}
	c.addNetworks(set.Networks...)
	if set.Network != "" {
		c.addNetworks(set.Network)
	}
	c.note.warnBefore = set.ExpiryWarning
	c.view = Derive(Inputs{Server: set.Server, Network: set.Network, Networks: c.networks, Now: d.Now()})
	return c
}

// Subscribe calls fn with every new view (from the refreshing goroutine).
func (c *Controller) Subscribe(fn func(View)) {
	c.mu.Lock()
	c.subs = append(c.subs, fn)
	c.mu.Unlock()
}

// View returns the latest view.
func (c *Controller) View() View {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view
}

// Run refreshes every Poll until ctx ends; a value on netChanged (may be
// nil) schedules doctor once the network has settled.
func (c *Controller) Run(ctx context.Context, netChanged <-chan struct{}) {
	t := time.NewTicker(c.set.Poll)
	defer t.Stop()
	c.Refresh(ctx)
	var settle <-chan time.Time
	again := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Refresh(ctx)
		case <-netChanged:
			settle = time.After(c.set.DoctorDelay)
		case <-settle:
			settle = nil
			go func() {
				if !c.CheckAfterNetworkChange(ctx) {
					select { // an action overlapped: look again once it settles
					case again <- struct{}{}:
					default:
					}
				}
			}()
		case <-again:
			settle = time.After(c.set.DoctorDelay)
		}
	}
}

// Refresh asks the agent and the token source, derives the view, sends the
// notifications it calls for and tells the subscribers.
func (c *Controller) Refresh(ctx context.Context) View {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var status *control.Status
	var agentErr error
	if st, err := c.d.Agent.Status(qctx); err == nil {
		status = st
	} else if !errors.Is(err, control.ErrNoAgent) {
		agentErr = err
	}
	login := c.d.Tokens.State(qctx, c.set.Server)
	now := c.d.Now()

	c.mu.Lock()
	if status != nil && status.State == control.StateUp {
		c.lastErr = nil // connected after all (maybe by the CLI)
		if status.Network != "" {
			c.addNetworks(status.Network)
		}
	}
	v := Derive(Inputs{Status: status, AgentErr: agentErr, Busy: c.busy, LastErr: c.lastErr, Login: login,
		Server: c.set.Server, Network: c.network, Networks: slices.Clone(c.networks), Now: now,
		AllTraffic: c.set.AllTraffic, RouteLAN: c.set.RouteLAN})
	v.RxRate, v.TxRate = c.rates(v, now)
	prev := c.view
	c.view = v
	notes := c.note.onView(prev, v)
	subs := slices.Clone(c.subs)
	c.mu.Unlock()

	for _, n := range notes {
		c.d.Notify(n)
	}
	for _, fn := range subs {
		fn(v)
	}
	return v
}

// rates computes bytes per second from the counters' change since the
// last refresh; a new tunnel (other interface or counters going back)
// starts from zero.
func (c *Controller) rates(v View, now time.Time) (rx, tx float64) {
	cur := counters{iface: v.Status.Interface, rx: v.Status.RxBytes, tx: v.Status.TxBytes, at: now}
	p := c.prev
	c.prev = cur
	if v.State != Connected || p.iface != cur.iface || p.at.IsZero() || cur.rx < p.rx || cur.tx < p.tx {
		return 0, 0
	}
	dt := now.Sub(p.at).Seconds()
	if dt <= 0 {
		return c.view.RxRate, c.view.TxRate
	}
	return float64(cur.rx-p.rx) / dt, float64(cur.tx-p.tx) / dt
}

// begin marks act as running, or fails if another action runs.
func (c *Controller) begin(ctx context.Context, act Action) error {
	c.mu.Lock()
	if c.busy != Idle {
		busy := c.busy
		c.mu.Unlock()
		return fmt.Errorf("%w (%s)", ErrBusy, busy)
	}
	c.busy, c.lastErr = act, nil
	c.mu.Unlock()
	c.Refresh(ctx)
	return nil
}

// end finishes the running action with its outcome.
func (c *Controller) end(ctx context.Context, err error) error {
	c.mu.Lock()
	c.busy, c.lastErr = Idle, err
	c.mu.Unlock()
	c.Refresh(ctx)
	return err
}

func (c *Controller) setBusy(act Action) {
	c.mu.Lock()
	c.busy = act
	c.mu.Unlock()
}

// Connect brings the tunnel up: token (logging in first when needed and
// possible), agent (started when none runs and we may), then the agent's
// up, which returns once traffic crosses the tunnel.
func (c *Controller) Connect(ctx context.Context) error {
	if c.set.Server == "" {
		return errors.New("no server configured: start the tray with --server URL")
	}
	if err := c.begin(ctx, ActConnect); err != nil {
		return err
	}
	return c.end(ctx, c.connect(ctx))
}

func (c *Controller) connect(ctx context.Context) error {
	tok, err := c.d.Tokens.Token(ctx, c.set.Server)
	if errors.Is(err, ErrLoginRequired) && c.d.Tokens.State(ctx, c.set.Server).Supported {
		c.setBusy(ActLogin)
		c.Refresh(ctx)
		err = c.d.Tokens.Login(ctx, c.set.Server)
		c.setBusy(ActConnect)
		c.Refresh(ctx)
		if err != nil {
			return fmt.Errorf("log in: %w", err)
		}
		tok, err = c.d.Tokens.Token(ctx, c.set.Server)
	}
	if err != nil {
		return err
	}
	if _, err := c.d.Agent.Status(ctx); errors.Is(err, control.ErrNoAgent) {
		if c.d.StartAgent == nil {
			return errors.New("no agent is running: start the clearpath service")
		}
		if err := c.d.StartAgent(ctx); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	c.mu.Lock()
	req, err := c.set.Request() // AllTraffic and RouteLAN as toggled now
	req.Token, req.Network = tok, c.network
	c.note.expected = false
	c.mu.Unlock()
	if err != nil {
		return err
	}
	// The agent bounds the wait for traffic by Timeout; registering and
	// creating the device come on top.
	uctx, cancel := context.WithTimeout(ctx, c.set.Timeout+30*time.Second)
	defer cancel()
	if r, ok := c.d.Tokens.(Refresher); ok {
		req.RefreshToken = r.RefreshToken(c.set.Server)
	}
	if tt, ok := c.d.Tokens.(trustTokens); ok {
		req.AllowHTTP, req.CAPEM = tt.Trust(c.set.Server)
	}
	_, err = c.d.Agent.Up(uctx, req)
	if err != nil {
		if nets := NetworksFromError(err); len(nets) > 0 {
			c.mu.Lock()
			c.addNetworks(nets...)
			c.mu.Unlock()
			return fmt.Errorf("you are in several networks: pick one under Network (%w)", err)
		}
		return err
	}
	return nil
}

// Restore asks the root agent to restore the routing table as it does at
// every start (the journal of a crashed session replayed, every route and
// rule of ClearPath's removed), when no session runs. With no agent
// running, one is started when this process may (its start restores);
// otherwise nothing of a session can be holding routes, and the error
// says how to restore what a crash left. The outcome is notified.
func (c *Controller) Restore(ctx context.Context) error {
	if err := c.begin(ctx, ActRestore); err != nil {
		return err
	}
	rep, started, err := c.restore(ctx)
	if err == nil {
		body := "Nothing to restore: no route or rule of ClearPath's was left."
		if started {
			body = "The agent was started and restored at its start what a crashed session left (its log lists it)."
		}
		if rep.Undone+rep.Swept > 0 {
			body = fmt.Sprintf("%d changes undone, %d leftovers removed.", rep.Undone, rep.Swept)
		}
		for _, p := range rep.Problems {
			body += "\n" + p
		}
		c.d.Notify(Notification{Kind: NoteRestore, Title: "ClearPath: routes restored", Body: body})
	}
	return c.end(ctx, err)
}

// restore asks the agent, starting one first when none runs (started).
func (c *Controller) restore(ctx context.Context) (rep *control.RestoreReport, started bool, err error) {
	rep, err = c.d.Agent.Restore(ctx)
	if errors.Is(err, control.ErrNoAgent) {
		if c.d.StartAgent == nil {
			return nil, false, errors.New("no agent is running, so no session holds routes; to restore what a crash left, start the clearpath service (it restores at start) or run `sudo vpn routes restore`")
		}
		if err := c.d.StartAgent(ctx); err != nil {
			return nil, false, fmt.Errorf("start the agent (it restores at start): %w", err)
		}
		started = true
		rep, err = c.d.Agent.Restore(ctx)
	}
	if errors.Is(err, control.ErrSessionActive) {
		return nil, started, errors.New("a session is active: Disconnect restores its routes")
	}
	if err != nil {
		return nil, started, fmt.Errorf("restore routes: %w", err)
	}
	return rep, started, nil
}

// Disconnect takes the tunnel down; it succeeds when nothing is up.
func (c *Controller) Disconnect(ctx context.Context) error {
	if err := c.begin(ctx, ActDisconnect); err != nil {
		return err
	}
	return c.end(ctx, c.disconnect(ctx))
}

func (c *Controller) disconnect(ctx context.Context) error {
	c.mu.Lock()
	c.note.expected = true
	c.mu.Unlock()
	_, err := c.d.Agent.Down(ctx)
	if errors.Is(err, control.ErrNoAgent) {
		return nil
	}
	if err != nil {
		return err
	}
	// The agent exits after answering: done means gone, so that a Connect
	// right after starts a new agent instead of talking to the exiting one.
	// Still answering after a while: a new `vpn up` may have started one.
	if !c.d.Agent.WaitGone(ctx) && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// Login runs the interactive login (the browser opens as this user).
func (c *Controller) Login(ctx context.Context) error {
	if err := c.begin(ctx, ActLogin); err != nil {
		return err
	}
	return c.end(ctx, c.d.Tokens.Login(ctx, c.set.Server))
}

// Logout disconnects (the tunnel belongs to the user logging out) and
// forgets the tokens.
func (c *Controller) Logout(ctx context.Context) error {
	if err := c.begin(ctx, ActLogout); err != nil {
		return err
	}
	err := c.disconnect(ctx)
	if err == nil {
		err = c.d.Tokens.Logout(ctx, c.set.Server)
	}
	return c.end(ctx, err)
}

// SelectNetwork picks the network to join; when connected to another one
// it reconnects.
func (c *Controller) SelectNetwork(ctx context.Context, name string) error {
	c.mu.Lock()
	if !slices.Contains(c.networks, name) {
		c.mu.Unlock()
		return fmt.Errorf("unknown network %q", name)
	}
	c.network = name
	v := c.view
	c.mu.Unlock()
	if v.State != Connected || v.Status.Network == name {
		c.Refresh(ctx)
		return nil
	}
	if err := c.Disconnect(ctx); err != nil {
		return err
	}
	return c.Connect(ctx)
}

// ToggleOption flips a consent option (ItemAllTraffic, ItemRouteLAN) for
// the next Connect. It is refused while a tunnel is up or coming up: the
// option would not apply to it, and the menu must not say otherwise.
func (c *Controller) ToggleOption(ctx context.Context, id string) error {
	c.mu.Lock()
	v := c.view
	if v.Busy != Idle || v.State == Connected || v.State == Connecting {
		c.mu.Unlock()
		return errors.New("disconnect first: connection options apply when connecting")
	}
	switch id {
	case ItemAllTraffic:
		c.set.AllTraffic = !c.set.AllTraffic
	case ItemRouteLAN:
		c.set.RouteLAN = !c.set.RouteLAN
	default:
		c.mu.Unlock()
		return fmt.Errorf("unknown option %q", id)
	}
	c.mu.Unlock()
	c.Refresh(ctx)
	return nil
}

// Doctor runs the checks.
func (c *Controller) Doctor(ctx context.Context) (analysis.Report, error) {
	if c.d.Doctor == nil {
		return analysis.Report{}, errors.New("doctor is not available")
	}
	return c.d.Doctor.Check(ctx)
}

// Fix repairs one finding and returns the new report.
func (c *Controller) Fix(ctx context.Context, id string) (analysis.Report, error) {
	if c.d.Doctor == nil {
		return analysis.Report{}, errors.New("doctor is not available")
	}
	return c.d.Doctor.Fix(ctx, id)
}

// CheckAfterNetworkChange runs doctor and notifies when it finds a problem
// it has not reported yet and that is still there a moment later. One
// check runs at a time; none while the user's own action runs (a connect
// or disconnect changes the network on purpose, half-way for a while).
//
// It returns false when an action overlapped the check, which should then
// be repeated once things settle.
func (c *Controller) CheckAfterNetworkChange(ctx context.Context) bool {
	c.mu.Lock()
	if c.doctorOn || c.d.Doctor == nil {
		c.mu.Unlock()
		return true
	}
	c.doctorOn = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.doctorOn = false
		c.mu.Unlock()
	}()
	rep, err := c.checkIdle(ctx)
	if errors.Is(err, errActionRan) {
		return false
	}
	if err != nil || !problems(rep) {
		if err == nil {
			c.mu.Lock()
			c.note.onDoctor(rep) // healthy again: a later problem is news
			c.mu.Unlock()
		}
		return true // a doctor that cannot run is not a network problem
	}
	select {
	case <-ctx.Done():
		return true
	case <-time.After(c.set.DoctorConfirm):
	}
	again, err := c.checkIdle(ctx)
	if errors.Is(err, errActionRan) {
		return false
	}
	if err != nil {
		return true
	}
	c.mu.Lock()
	n := c.note.onDoctor(persisting(rep, again))
	c.mu.Unlock()
	if n != nil {
		c.d.Notify(*n)
	}
	return true
}

// errActionRan means the user's action overlapped a doctor run.
var errActionRan = errors.New("an action ran during the check")

// checkIdle runs doctor, failing when an action of the tray or of the
// agent (connecting) overlapped it.
func (c *Controller) checkIdle(ctx context.Context) (analysis.Report, error) {
	idle := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.busy == Idle && c.view.State != Connecting
	}
	if !idle() {
		return analysis.Report{}, errActionRan
	}
	rep, err := c.d.Doctor.Check(ctx)
	if err == nil && !idle() {
		err = errActionRan
	}
	return rep, err
}

func problems(rep analysis.Report) bool {
	for _, f := range rep.Findings {
		if f.Severity == analysis.Error || f.Severity == analysis.Warning {
			return true
		}
	}
	return false
}

// persisting keeps the findings of later whose ID first had too.
func persisting(first, later analysis.Report) analysis.Report {
	seen := map[string]bool{}
	for _, f := range first.Findings {
		seen[f.ID] = true
	}
	out := later
	out.Findings = nil
	for _, f := range later.Findings {
		if seen[f.ID] {
			out.Findings = append(out.Findings, f)
		}
	}
	return out
}

// addNetworks appends names not known yet; callers hold c.mu (or own c).
func (c *Controller) addNetworks(names ...string) {
	for _, n := range names {
		if n != "" && !slices.Contains(c.networks, n) {
			c.networks = append(c.networks, n)
		}
	}
}
