package tray

import (
	"strings"
)

// Item IDs of the tray menu. Clicks come back to the controller by ID.
const (
	ItemState      = "state"
	ItemAddress    = "address"
	ItemServer     = "server"
	ItemReason     = "reason"
	ItemConnect    = "connect"
	ItemDisconnect = "disconnect"
	ItemLogin      = "login"
	ItemLogout     = "logout"
	ItemNetwork    = "network"
	ItemDoctor     = "doctor"
	ItemStatus     = "status"
	ItemQuit       = "quit"
	ItemOptions    = "options"
	ItemAllTraffic = "all-traffic"
	ItemRouteLAN   = "route-lan"
	ItemRestore    = "restore"

	// NetworkPrefix starts the ID of each network's item; the rest is its name.
	NetworkPrefix = "network:"
)

// Item is one entry of the tray menu, independent of any GUI toolkit.
type Item struct {
	ID        string
	Label     string
	Disabled  bool
	Checked   bool
	Separator bool
	Children  []Item
}

// Menu is the tray menu for v: the state and where we are connected on
// top (information only), then the one-click action, login, the network
// choice when there is one, the windows, and Quit.
func Menu(v View) []Item {
	items := []Item{{ID: ItemState, Label: "ClearPath: " + StateLine(v), Disabled: true}}
	if v.State == Connected {
		if len(v.Status.Addresses) > 0 {
			items = append(items, Item{ID: ItemAddress, Label: "Address: " + hostAddrs(v.Status.Addresses), Disabled: true})
		}
	}
	if v.Server != "" {
		label := "Server: " + ServerHost(v.Server)
		if v.Network != "" {
			label += " (" + v.Network + ")"
		}
		items = append(items, Item{ID: ItemServer, Label: label, Disabled: true})
	}
	if v.Reason != "" && (v.State == Error || v.State == NeedsLogin) {
		items = append(items, Item{ID: ItemReason, Label: clip(v.Reason, 80), Disabled: true})
	}
	items = append(items, Item{Separator: true})

	switch {
	case v.Busy == ActConnect:
		items = append(items, Item{ID: ItemConnect, Label: "Connecting…", Disabled: true})
	case v.Busy == ActDisconnect:
		items = append(items, Item{ID: ItemDisconnect, Label: "Disconnecting…", Disabled: true})
	case v.State == Connected || v.State == Connecting:
		items = append(items, Item{ID: ItemDisconnect, Label: "Disconnect"})
	default:
		items = append(items, Item{ID: ItemConnect, Label: "Connect", Disabled: v.Server == "" || v.Busy != Idle})
	}

	if v.Login.Supported {
		switch {
		case v.Busy == ActLogin:
			items = append(items, Item{ID: ItemLogin, Label: "Logging in…", Disabled: true})
		case v.Login.LoggedIn:
			label := "Log out"
			if v.Login.Who != "" {
				label += " " + v.Login.Who
			}
			items = append(items, Item{ID: ItemLogout, Label: label, Disabled: v.Busy != Idle})
		default:
			items = append(items, Item{ID: ItemLogin, Label: "Log in…", Disabled: v.Server == "" || v.Busy != Idle})
		}
	}

	if len(v.Networks) > 1 {
		sub := Item{ID: ItemNetwork, Label: "Network"}
		for _, n := range v.Networks {
			sub.Children = append(sub.Children, Item{ID: NetworkPrefix + n, Label: n, Checked: n == v.Network, Disabled: v.Busy != Idle})
		}
		items = append(items, sub)
	}

	// The consent options of the next Connect (vpn up --all-traffic,
	// --route-lan); fixed while a tunnel is up.
	fixed := v.Busy != Idle || v.State == Connected || v.State == Connecting
	items = append(items, Item{ID: ItemOptions, Label: "Connection options", Children: []Item{
		{ID: ItemAllTraffic, Label: "Send all traffic through the tunnel", Checked: v.AllTraffic, Disabled: fixed},
		{ID: ItemRouteLAN, Label: "Route LAN through the tunnel", Checked: v.RouteLAN, Disabled: fixed},
	}})

	items = append(items,
		Item{Separator: true},
		Item{ID: ItemStatus, Label: "Open status window"},
		Item{ID: ItemDoctor, Label: "Run doctor"},
		// What the agent does at every start, on demand: only without a
		// session (Disconnect restores a session's routes).
		Item{ID: ItemRestore, Label: "Restore routes", Disabled: v.Busy != Idle || v.State == Connected || v.State == Connecting},
		Item{Separator: true},
		Item{ID: ItemQuit, Label: "Quit"},
	)
	return items
}

// Find returns the item with id in items (searching submenus).
func Find(items []Item, id string) (Item, bool) {
	for _, it := range items {
		if it.ID == id && !it.Separator {
			return it, true
		}
		if c, ok := Find(it.Children, id); ok {
			return c, true
		}
	}
	return Item{}, false
}

// hostAddrs drops the /32 and /128 of host prefixes: people read addresses.
func hostAddrs(prefixes []string) string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = strings.TrimSuffix(strings.TrimSuffix(p, "/32"), "/128")
	}
	return strings.Join(out, ", ")
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
