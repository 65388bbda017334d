//go:build !linux

package tray

import (
	"context"
	"net"
	"slices"
	"strings"
	"time"
)

// WatchNetwork sends on the returned channel when the machine's interface
// addresses change, until ctx ends. Without netlink it polls every 3s.
func WatchNetwork(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	go func() {
		last := addrKey()
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if k := addrKey(); k != last {
				last = k
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, nil
}

func addrKey() string {
	ifs, _ := net.Interfaces()
	var parts []string
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			parts = append(parts, i.Name+"="+a.String())
		}
		parts = append(parts, i.Name+":"+i.Flags.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
