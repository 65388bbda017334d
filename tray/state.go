// Package tray is the logic of the ClearPath tray app: it turns what the
// agent reports into one of five states, a menu, status rows and
// notifications, and turns clicks into control-API calls. It draws nothing,
// so all of it is testable without a display; tray/ui draws it with fyne and
// cmd/vpn-tray is the thin binary that needs cgo.
package tray

import (
	"errors"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
)

// State is what the tray icon shows.
type State int

// The tray's states, one icon each.
const (
	Disconnected State = iota
	Connecting
	Connected
	NeedsLogin
	Error
)

var stateNames = [...]string{"disconnected", "connecting", "connected", "needs login", "error"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Action is something the user started that has not finished yet.
type Action string

// Actions the tray runs on the user's behalf.
const (
	Idle          Action = ""
	ActConnect    Action = "connecting"
	ActDisconnect Action = "disconnecting"
	ActLogin      Action = "logging in"
	ActLogout     Action = "logging out"
	ActRestore    Action = "restoring routes"
)

// LoginState is what the token source knows about the user.
type LoginState struct {
	// Supported is false when the token comes from a file: then the tray
	// offers no Log in / Log out.
	Supported bool
	LoggedIn  bool
	Who       string
	Expiry    time.Time
}

// Inputs is everything the tray knows at one moment.
type Inputs struct {
	// Status is the agent's answer; nil when no agent runs.
	Status *control.Status
	// AgentErr is set when an agent may run but could not be asked (for
	// example the socket is root-only); "no agent" is not an error.
	AgentErr error
	Busy     Action
	// LastErr is the failure of the last action, kept until the next one.
	LastErr  error
	Login    LoginState
	Server   string // the configured server
	Network  string // the chosen network, "" = the gateway's choice
	Networks []string
	Now      time.Time
	// AllTraffic and RouteLAN are the consent options the next Connect
	// sends (--all-traffic, --route-lan).
	AllTraffic, RouteLAN bool
}

// View is the tray's state with what the menu and windows show.
type View struct {
	State State
	// Reason says why the state is Error or NeedsLogin, in one line.
	Reason   string
	Busy     Action
	Status   control.Status // zero when no agent answers
	Agent    bool           // an agent answered
	Login    LoginState
	Server   string
	Network  string
	Networks []string
	// RxRate and TxRate are bytes per second since the previous view.
	RxRate, TxRate float64
	Now            time.Time
	// AllTraffic and RouteLAN: what the next Connect asks for. What is in
	// force is Status.FullTunnel and Status.RouteLAN.
	AllTraffic, RouteLAN bool
}

// ErrLoginRequired means no valid token is at hand: the user must log in.
var ErrLoginRequired = errors.New("login required")

// Derive computes the view of in. It is pure: same inputs, same view.
func Derive(in Inputs) View {
	v := View{Busy: in.Busy, Login: in.Login, Server: in.Server, Network: in.Network, Networks: in.Networks, Now: in.Now,
		AllTraffic: in.AllTraffic, RouteLAN: in.RouteLAN}
	if in.Status != nil {
		v.Status, v.Agent = *in.Status, true
		if v.Status.Server != "" && v.Status.State != control.StateDown {
			v.Server = v.Status.Server
		}
		if v.Status.Network != "" {
			v.Network = v.Status.Network
		}
	}
	switch {
	case in.Busy == ActConnect || in.Busy == ActDisconnect:
		v.State = Connecting
	case in.AgentErr != nil:
		v.State, v.Reason = Error, oneLine(in.AgentErr.Error())
	case v.Agent && v.Status.State == control.StateUp:
		v.State = Connected
	case v.Agent && v.Status.State == control.StateConnecting:
		v.State = Connecting
	case in.Busy == ActLogin:
		v.State, v.Reason = NeedsLogin, "logging in: finish in your browser"
	case in.LastErr != nil && IsAuthError(in.LastErr):
		v.State, v.Reason = NeedsLogin, oneLine(in.LastErr.Error())
	case in.Login.Supported && !in.Login.LoggedIn:
		v.State, v.Reason = NeedsLogin, "not logged in"
	case in.LastErr != nil:
		v.State, v.Reason = Error, oneLine(in.LastErr.Error())
	case v.Agent && v.Status.Error != "":
		v.State, v.Reason = Error, oneLine(v.Status.Error)
	default:
		v.State = Disconnected
	}
	return v
}

// IsAuthError tells whether err means the token was refused or missing,
// so logging in again is the fix.
func IsAuthError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrLoginRequired) {
		return true
	}
	// The agent relays the gateway's refusal as text (see client/gwapi:
	// "gateway refused (401 invalid_token): ...").
	msg := err.Error()
	return strings.Contains(msg, "(401 ") || strings.Contains(msg, "invalid_token")
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
