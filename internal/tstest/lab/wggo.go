package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WireGuardGo is a reference wireguard-go end as `wg` users set one up.
type WireGuardGo struct {
	// Argv runs it in the foreground: the binary with "-f", Iface, maybe
	// behind a wrapper that pins it to a core. Env is added to its
	// environment.
	Argv, Env []string
	// Iface gets Conf (a `wg setconf` file, written into Dir) and Addr
	// (with its prefix length), then its link is set up.
	Iface, Conf, Dir, Addr string
	// Listening reports whether Iface's UAPI socket answers
	// (wgdev.InUse, which lab cannot import: wgdev's tests import lab).
	Listening func(iface string) bool
}

// StartWireGuardGo starts w in the node and configures it once its UAPI
// socket answers: what bench/tunnelbench and internal/tstest/uplat time
// as the reference's set-up.
func (n *Node) StartWireGuardGo(ctx context.Context, w WireGuardGo) (*Proc, error) {
	if w.Listening == nil {
		return nil, errors.New("lab: StartWireGuardGo needs Listening")
	}
	confPath := filepath.Join(w.Dir, w.Iface+".conf")
	if err := os.WriteFile(confPath, []byte(w.Conf), 0o600); err != nil {
		return nil, err
	}
	p, err := n.StartEnv("wireguard-go-"+n.Name, w.Env, w.Argv...)
	if err != nil {
		return nil, err
	}
	for !w.Listening(w.Iface) {
		if done, err := p.Exited(); done {
			return p, fmt.Errorf("wireguard-go %s exited at start (%v):\n%s", w.Iface, err, p.Log())
		}
		if ctx.Err() != nil {
			return p, fmt.Errorf("wireguard-go %s: no UAPI socket: %w", w.Iface, ctx.Err())
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, argv := range [][]string{
		{"wg", "setconf", w.Iface, confPath},
		{"ip", "addr", "add", w.Addr, "dev", w.Iface},
		{"ip", "link", "set", w.Iface, "up"},
	} {
		if out, err := n.Exec(ctx, argv...); err != nil {
			return p, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
		}
	}
	return p, nil
}
