package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread that has entered the node's network namespace,
// then moves the thread back. Sockets created inside fn stay in the node's
// namespace for their whole life, wherever they are used later. Goroutines
// that fn starts do NOT inherit the namespace.
func (n *Node) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(n.NS)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: netns %s: %w", n.NS, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: enter %s: %w", n.NS, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: Go ends a locked thread when its
		// goroutine exits, so the wrong namespace dies with it.
		return fmt.Errorf("lab: leave %s: %w", n.NS, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// DialContext opens a connection from inside the node (net.Dialer semantics).
func (n *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside the node.
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket inside the node.
func (n *Node) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	return pc, err
}

// HTTPClient returns a client whose connections start inside the node;
// for https it trusts the lab's CA (CA).
func (n *Node) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       n.DialContext,
			DisableKeepAlives: true,
			Proxy:             nil,
			TLSClientConfig:   tlsClientConfig(),
		},
	}
}
