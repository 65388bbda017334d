package status

import (
	"fmt"
	"strings"

	"github.com/clearpath-vpn/clearpath/client/control"
)

// DNSRow is the `dns` line of `vpn status`: what the gateway pushed and
// how this machine uses it ("" when nothing was pushed).
func DNSRow(d *control.DNSStatus) string {
	if d == nil {
		return ""
	}
	names := "names under " + strings.Join(d.Domains, ", ")
	if len(d.Domains) == 0 {
		names = "all names"
	}
	servers := strings.Join(d.Servers, ", ")
	switch d.Mode {
	case "stub":
		s := fmt.Sprintf("%s via %s (tunnel) through the stub %s", names, servers, d.Stub)
		if !d.All {
			up := strings.Join(d.Upstream, ", ")
			if up == "" {
				up = "none"
			}
			s += "; other names via " + up
		}
		return s + fmt.Sprintf("; queries: %d tunnel, %d other, %d failed", d.ViaTunnel, d.ViaUpstream, d.Failed)
	case "resolved":
		return fmt.Sprintf("%s via %s (tunnel), set on the tunnel link in systemd-resolved", names, servers)
	case "resolver":
		s := fmt.Sprintf("%s via %s (tunnel), one file per domain in %s", names, servers, d.ResolvConf)
		if d.Note != "" {
			s += "; " + d.Note
		}
		return s
	default:
		return fmt.Sprintf("not used: %s (servers %s)", d.Note, servers)
	}
}
