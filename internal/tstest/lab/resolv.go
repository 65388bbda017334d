package lab

import (
	"fmt"
	"os"
	"path/filepath"
)

// etcNetnsDir is where `ip netns exec NS` finds files it bind-mounts over
// /etc for the program it runs (/etc/netns/NS/resolv.conf becomes its
// /etc/resolv.conf). The machine's own /etc/resolv.conf is never touched.
const etcNetnsDir = "/etc/netns"

// SetResolvConf gives the node its own /etc/resolv.conf for every program
// started in it from now on (through `ip netns exec`), and returns the
// file's path as seen from outside: a program in the node that writes its
// /etc/resolv.conf in place writes this file. It is removed with the node.
func (n *Node) SetResolvConf(content []byte) (string, error) {
	dir := filepath.Join(etcNetnsDir, n.NS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		return "", fmt.Errorf("lab: %s: %w", n.Name, err)
	}
	return p, nil
}

// ResolvConfPath is the node's resolv.conf as seen from outside ("" when
// the node has none of its own).
func (n *Node) ResolvConfPath() string {
	p := filepath.Join(etcNetnsDir, n.NS, "resolv.conf")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// removeEtcNetns removes /etc/netns/<ns> of one of our namespaces (the
// sweeper and Close call it after the namespace is gone).
func removeEtcNetns(ns string) {
	if !nsRE.MatchString(ns) {
		return
	}
	os.RemoveAll(filepath.Join(etcNetnsDir, ns))
}
