package explain

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/store"
)

// Request names the user and destination to explain.
type Request struct {
	Config *config.Config
	Store  *store.Store
	// Subject and Email of the user (resolved by the caller).
	Subject, Email string
	// Host is an IP literal or a name, Port 0 when not given; Proto is
	// tcp, udp, icmp or "" (any traffic; ParseTarget reads all three).
	Host  string
	Port  int
	Proto string
	// Groups stand in for the user's OIDC groups where they have no peer
	// (a would-be member); a peer's own stored groups win.
	Groups []string
	// Network limits the answer to one network; the user need not have
	// joined it (a source address from its pool stands in).
	Network string
	Now     time.Time
}

// Answer is the whole explanation.
type Answer struct {
	User        string    `json:"user"`
	Subject     string    `json:"subject"`
	Host        string    `json:"host"`
	Port        int       `json:"port,omitempty"`
	Proto       string    `json:"proto,omitempty"`
	Reachable   bool      `json:"reachable"`
	Disabled    string    `json:"disabled,omitempty"`
	Networks    []Verdict `json:"networks"`
	Summary     string    `json:"summary"`
	PortComment string    `json:"port_note,omitempty"`
}

// Verdict is the answer for one network and one destination address.
type Verdict struct {
	Network     string `json:"network"`
	Group       string `json:"group"`
	Interface   string `json:"interface"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Key says whether the user has a live key here.
	Key string `json:"key"`
	// ClientRoutes: the destination is inside the allowed CIDRs the
	// gateway pushes, so the user's client sends it into the tunnel.
	ClientRoutes bool `json:"client_routes"`
	// Path lists each rule the walk considered and what it did, one
	// line each; Steps is the same as data (analysis.Step).
	Path  []string        `json:"path"`
	Steps []analysis.Step `json:"steps"`
	// Rule and Route decide (from the walk of the live tables).
	Rule  string `json:"rule,omitempty"`
	Route string `json:"route,omitempty"`
	// Access is the eBPF filter's part: whether the user's access rules
	// (config access.go) let the packet through, naming the rule.
	Access *Access `json:"access,omitempty"`
	// Kernel is the real lookup's answer: the route the kernel picked
	// (`ip route get fibmatch`), or its error.
	Kernel  string `json:"kernel"`
	Allowed bool   `json:"allowed"`
	Why     string `json:"why"`
}

// SplitHostPort reads HOST[:PORT] (IPv6 with a port in brackets).
func SplitHostPort(s string) (string, int, error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%q: port %q is not 1-65535", s, p)
		}
		return strings.Trim(h, "[]"), port, nil
	}
	return strings.Trim(s, "[]"), 0, nil
}
