package tray

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Notification is a desktop notification the tray wants shown.
type Notification struct {
	Kind  string // "disconnect", "expiry", "doctor"
	Title string
	Body  string
}

// Notification kinds.
const (
	NoteDisconnect = "disconnect"
	NoteExpiry     = "expiry"
	NoteDoctor     = "doctor"
	NoteRestore    = "restore"
	// NoteNotice carries the agent's notices about what it did not take
	// from the gateway (e.g. a default route without --all-traffic).
	NoteNotice = "notice"
)

// notifier decides which notifications to send; it remembers what it
// already said so nothing repeats every poll.
type notifier struct {
	// warnBefore is how long before the peer's expiry to warn.
	warnBefore time.Duration
	// expected is set while the user asked to go down: no "disconnected"
	// notification for what they clicked.
	expected     bool
	warnedExpiry time.Time
	doctorKey    string
	// noticeKey is the connection and notices last shown; it is cleared
	// when the tunnel is not up, so each new connection tells again.
	noticeKey string
}

// onView compares the previous and the current view.
func (n *notifier) onView(prev, cur View) []Notification {
	var out []Notification
	if prev.State == Connected && cur.State != Connected && cur.Busy != ActDisconnect {
		if !n.expected {
			why := cur.Reason
			if why == "" && !cur.Agent {
				why = "the agent stopped"
			}
			if why == "" {
				why = "the tunnel went down"
			}
			out = append(out, Notification{Kind: NoteDisconnect, Title: "ClearPath disconnected", Body: why})
		}
		n.expected = false
	}
	if cur.State != Connected {
		n.noticeKey = ""
	}
	if cur.State == Connected {
		n.expected = false
		if ns := cur.Status.Notices; len(ns) > 0 {
			key := strings.Join(ns, "\n")
			if at := cur.Status.ConnectedAt; at != nil {
				key = at.UTC().Format(time.RFC3339Nano) + "\n" + key
			}
			if key != n.noticeKey {
				n.noticeKey = key
				out = append(out, Notification{Kind: NoteNotice, Title: "ClearPath connected with changes", Body: strings.Join(ns, "\n")})
			}
		}
		if exp := cur.Status.ExpiresAt; exp != nil && !exp.Equal(n.warnedExpiry) && exp.Sub(cur.Now) <= n.warnBefore {
			n.warnedExpiry = *exp
			body := fmt.Sprintf("The gateway ends this connection %s. Reconnect to renew it.", Until(*exp, cur.Now))
			out = append(out, Notification{Kind: NoteExpiry, Title: "ClearPath connection expires soon", Body: body})
		}
	}
	return out
}

// onDoctor reports problems doctor found, once per distinct set.
func (n *notifier) onDoctor(rep analysis.Report) *Notification {
	var ids, titles []string
	for _, f := range rep.Findings {
		if f.Severity == analysis.Error || f.Severity == analysis.Warning {
			ids = append(ids, f.ID)
			titles = append(titles, f.Title)
		}
	}
	sort.Strings(ids)
	key := strings.Join(ids, ",")
	if key == n.doctorKey {
		return nil
	}
	n.doctorKey = key
	if key == "" {
		return nil
	}
	title := "ClearPath doctor found a problem"
	if len(ids) > 1 {
		title = fmt.Sprintf("ClearPath doctor found %d problems", len(ids))
	}
	body := titles[0]
	if len(titles) > 1 {
		body += fmt.Sprintf(" (and %d more)", len(titles)-1)
	}
	return &Notification{Kind: NoteDoctor, Title: title, Body: body + ". Open “Run doctor” for the fix."}
}
