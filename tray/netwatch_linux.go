package tray

import (
	"context"
	"time"

	"github.com/clearpath-vpn/clearpath/routes"
)

// WatchNetwork sends on the returned channel (never blocking, at most every
// 300ms) when links, addresses or routes change, until ctx ends.
func WatchNetwork(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	err := routes.Watch(ctx, 300*time.Millisecond, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	return ch, err
}
