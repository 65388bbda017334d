package tunnel

import (
	"fmt"
	"net/netip"
	"strings"
)

// ifconfigArgs are the ifconfig(8) calls that give a macOS utun its
// addresses and bring it up, as wg-quick does on macOS: an IPv4 address is
// its own point-to-point destination; IPv6 takes the prefix length.
func ifconfigArgs(name string, addrs []netip.Prefix) [][]string {
	var out [][]string
	for _, a := range addrs {
		if a.Addr().Is4() {
			out = append(out, []string{name, "inet", a.String(), a.Addr().String(), "alias"})
		} else {
			out = append(out, []string{name, "inet6", a.String(), "alias"})
		}
	}
	return append(out, []string{name, "up"})
}

// checkUtunName refuses what macOS cannot create: a tunnel there is
// "utun" (the kernel picks the number) or a given utunN. (No regular
// expression: compiled at package init, it cost every vpn start.)
func checkUtunName(name string) error {
	n, ok := strings.CutPrefix(name, "utun")
	if !ok || strings.Trim(n, "0123456789") != "" {
		return fmt.Errorf("interface name %q: on macOS a tunnel is utun or utunN (leave --interface empty to let the kernel pick)", name)
	}
	return nil
}
