package routes

import (
	"context"
	"fmt"
	"sync/atomic"
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

// WatchRoutes calls onChange once route changes of this network namespace
// (ours included) have paused for settle, until the returned stop is
// called. onErr hears the listener's errors, but not the one closing it
// causes. It is the route listener of wireguard-go devices whose bind is
// wrapped (internal/wgdev), so routes/ stays the only reader of routes.
func WatchRoutes(settle time.Duration, onChange func(), onErr func(error)) (stop func(), err error) {
	updates := make(chan netlink.RouteUpdate, 64)
	done := make(chan struct{})
	var stopping atomic.Bool
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{
		ErrorCallback: func(err error) {
			if !stopping.Load() && onErr != nil { // closing the socket fails the pending read
				onErr(err)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("listen for route changes: %w", err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var timer <-chan time.Time
		for {
			select {
			case _, ok := <-updates:
				if !ok {
					return
				}
				timer = time.After(settle)
			case <-timer:
				timer = nil
				onChange()
			case <-done:
				return
			}
		}
	}()
	return func() { stopping.Store(true); close(done); <-finished }, nil
}
