package routes

import (
	"context"
	"time"

	"github.com/vishvananda/netlink"
)

// Watch calls onChange (at most every debounce) after links, addresses or
// routes of this network namespace change, until ctx ends. A new DHCP lease
// or a docker bridge appearing thus re-plans the tunnel within a second.
func Watch(ctx context.Context, debounce time.Duration, onChange func()) error {
	done := make(chan struct{})
	routesCh := make(chan netlink.RouteUpdate, 64)
	addrCh := make(chan netlink.AddrUpdate, 64)
	linkCh := make(chan netlink.LinkUpdate, 64)
	if err := netlink.RouteSubscribe(routesCh, done); err != nil {
		close(done)
		return err
	}
	if err := netlink.AddrSubscribe(addrCh, done); err != nil {
		close(done)
		return err
	}
	if err := netlink.LinkSubscribe(linkCh, done); err != nil {
		close(done)
		return err
	}
	go func() {
		defer close(done)
		var timer <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case u := <-routesCh:
				// Our own changes echo back; only the machine's own routes matter.
				if u.Protocol == Protocol || u.Table == Table {
					continue
				}
				timer = time.After(debounce)
			case <-addrCh:
				timer = time.After(debounce)
			case <-linkCh:
				timer = time.After(debounce)
			case <-timer:
				timer = nil
				onChange()
			}
		}
	}()
	return nil
}
