package tray

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/internal/units"
)

// Row is one line of the status window.
type Row struct {
	Label, Value string
}

// StatusRows are the status window's fields for v, in display order. Fields
// that do not apply to the state are left out rather than shown empty.
func StatusRows(v View) []Row {
	st := v.Status
	rows := []Row{{"State", StateLine(v)}}
	if v.Reason != "" {
		rows = append(rows, Row{"Why", v.Reason})
	}
	if who := Who(v); who != "" {
		rows = append(rows, Row{"User", who})
	}
	if v.Server != "" {
		rows = append(rows, Row{"Server", v.Server})
	}
	if v.Network != "" {
		rows = append(rows, Row{"Network", v.Network})
	}
	if v.State == Connected {
		addrs := strings.Join(st.Addresses, ", ")
		if st.Interface != "" {
			addrs += " on " + st.Interface
		}
		rows = append(rows,
			Row{"Addresses", addrs},
			Row{"Endpoint", st.Endpoint},
		)
		hs := "none yet"
		if st.HandshakeAgeSec != nil {
			hs = Age(time.Duration(*st.HandshakeAgeSec * float64(time.Second)))
		}
		rows = append(rows,
			Row{"Handshake", hs},
			Row{"Receiving", fmt.Sprintf("%s (%s total)", Rate(v.RxRate), units.Bytes(st.RxBytes))},
			Row{"Sending", fmt.Sprintf("%s (%s total)", Rate(v.TxRate), units.Bytes(st.TxBytes))},
		)
		if st.ConnectedAt != nil {
			rows = append(rows, Row{"Connected", Since(*st.ConnectedAt, v.Now)})
		}
		if st.FullTunnel {
			rows = append(rows, Row{"Mode", "all traffic through the tunnel"})
		} else {
			rows = append(rows, Row{"Mode", "split tunnel"})
		}
		for _, n := range st.Notices {
			rows = append(rows, Row{"Notice", n})
		}
	}
	if st.ExpiresAt != nil && v.State == Connected {
		rows = append(rows, Row{"Peer expires", Until(*st.ExpiresAt, v.Now)})
	}
	if v.Login.Supported && !v.Login.Expiry.IsZero() {
		rows = append(rows, Row{"Login expires", Until(v.Login.Expiry, v.Now)})
	}
	return rows
}

// RouteLines are the installed routes and rules, one per line.
func RouteLines(v View) []string {
	var out []string
	out = append(out, v.Status.Routes...)
	for _, r := range v.Status.Rules {
		out = append(out, "rule "+r)
	}
	return out
}

// OverlapLines describe the overlap plan: each pushed prefix that covers or
// is covered by one of this machine's routes, and who wins.
func OverlapLines(v View) []string {
	var out []string
	for _, o := range v.Status.Overlaps {
		w := "the LAN"
		if o.Winner == "tunnel" {
			w = "the tunnel"
		}
		out = append(out, fmt.Sprintf("%s overlaps %s: %s wins", o.Pushed, o.Local, w))
	}
	return out
}

// StateLine is the state as a short sentence for the menu's first line.
func StateLine(v View) string {
	switch {
	case v.Busy == ActDisconnect:
		return "Disconnecting…"
	case v.State == Connecting:
		return "Connecting…"
	case v.State == Connected:
		return "Connected"
	case v.State == NeedsLogin:
		return "Not logged in"
	case v.State == Error:
		return "Error"
	}
	return "Disconnected"
}

// Who names the user as the gateway or the login saw them.
func Who(v View) string {
	switch {
	case v.Status.Email != "":
		return v.Status.Email
	case v.Status.User != "":
		return v.Status.User
	}
	return v.Login.Who
}

// ServerHost is the host part of a server URL, for the menu.
func ServerHost(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return server
	}
	return u.Host
}

// Rate formats bytes per second.
func Rate(bps float64) string {
	if bps < 0 || math.IsNaN(bps) || math.IsInf(bps, 0) {
		bps = 0
	}
	if bps < 1024 {
		return fmt.Sprintf("%.0f B/s", bps)
	}
	return units.Bytes(int64(bps)) + "/s"
}

// Age formats how long ago something happened.
func Age(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return units.Duration(d) + " ago"
}

// Until formats a deadline relative to now, with the local clock time.
func Until(t, now time.Time) string {
	at := t.Local().Format("Mon 2 Jan 15:04")
	if !t.After(now) {
		return fmt.Sprintf("expired %s ago (%s)", units.Duration(now.Sub(t)), at)
	}
	return fmt.Sprintf("in %s (%s)", units.Duration(t.Sub(now)), at)
}

// Since formats a start time relative to now.
func Since(t, now time.Time) string {
	return fmt.Sprintf("%s (for %s)", t.Local().Format("15:04:05"), units.Duration(now.Sub(t)))
}

// EscapeMarkup escapes text for a desktop notification body: notification
// servers that support body markup would render <a href=...>, <img> and
// entities from text that came from the gateway (errors, network names).
func EscapeMarkup(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
