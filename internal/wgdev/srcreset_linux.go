package wgdev

import (
	"bufio"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
)

// Wrapping the bind (inflight.go) switches off wireguard-go's route listener
// (device/sticky_linux.go runs only on a *conn.StdNetBind). That listener
// makes a peer forget the source address it remembered for replies when the
// route to the peer changes, so a laptop that moved to another network does
// not keep sending from an address it no longer has. watchRoutes does the
// same from outside: on a route change it sets every peer's endpoint again,
// which drops the remembered source; the next packet from the peer teaches
// it anew.

// routeSettle is how long route changes must pause before the reset: `vpn
// up` and a network change each come as a burst of changes.
const routeSettle = 200 * time.Millisecond

func (d *Device) watchRoutes(log *slog.Logger) (stop func(), err error) {
	return routes.WatchRoutes(routeSettle, func() {
		if err := d.resetEndpoints(); err != nil {
			log.Warn("forget peers' source addresses after a route change", "interface", d.Name, "err", err)
		}
	}, func(err error) { log.Warn("route listener", "interface", d.Name, "err", err) })
}

// resetEndpoints sets each peer's endpoint to what it is now.
func (d *Device) resetEndpoints() error {
	cur, err := d.Dev.IpcGet()
	if err != nil {
		return err
	}
	set := endpointResets(cur)
	if set == "" {
		return nil
	}
	return d.Dev.IpcSet(set)
}

// endpointResets turns a UAPI get answer into the set request that gives
// every peer with an endpoint that same endpoint again. update_only keeps a
// peer removed in the meantime (revoked, expired) from being created anew.
func endpointResets(uapi string) string {
	var b strings.Builder
	var peer string
	sc := bufio.NewScanner(strings.NewReader(uapi))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			peer = v
		case "endpoint":
			if peer != "" && v != "" {
				fmt.Fprintf(&b, "public_key=%s\nupdate_only=true\nendpoint=%s\n", peer, v)
			}
		}
	}
	return b.String()
}
