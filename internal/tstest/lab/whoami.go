package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// WhoAmI is a tiny HTTP service that answers every request with the
// source address it saw, so a test (or a person with curl) can tell
// whether traffic arrived un-NATed from a tunnel address.
type WhoAmI struct {
	Node *Node
	Addr string // listen address, e.g. "[::]:8000"
	srv  *http.Server
	mu   sync.Mutex
	seen []string
}

// StartWhoAmI serves WhoAmI in node on addr ("[::]:8000" serves IPv4 and
// IPv6). It stops with the lab.
func StartWhoAmI(node *Node, addr string) (*WhoAmI, error) {
	ln, err := node.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("whoami in %s: %w", node.Name, err)
	}
	w := &WhoAmI{Node: node, Addr: ln.Addr().String()}
	w.srv = &http.Server{Handler: w, ReadHeaderTimeout: 5 * time.Second}
	go w.srv.Serve(ln)
	node.lab.onClose(func() { w.Close() })
	return w, nil
}

func (w *WhoAmI) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		host = ip.To4().String() // dual-stack socket: show 10.x, not ::ffff:10.x
	}
	w.mu.Lock()
	w.seen = append(w.seen, host)
	w.mu.Unlock()
	fmt.Fprintf(rw, "hello from %s, you are %s\n", w.Node.Name, host)
}

// Seen returns the source addresses of all requests so far.
func (w *WhoAmI) Seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.seen...)
}

// Close stops the service.
func (w *WhoAmI) Close() error { return w.srv.Close() }

// AskWhoAmI connects from node to a WhoAmI at hostport (an IP literal and
// port) and returns the source address the service saw.
func (n *Node) AskWhoAmI(ctx context.Context, hostport string) (string, error) {
	hc := n.HTTPClient(0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+hostport+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s to %s: %w", n.Name, hostport, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	i := strings.LastIndex(s, "you are ")
	if i < 0 {
		return "", fmt.Errorf("unexpected answer from %s: %q", hostport, s)
	}
	return s[i+len("you are "):], nil
}
