package local

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/clearpath-vpn/clearpath/client/control"
)

// DefaultUpTimeout is --timeout's default: how long an up waits for
// traffic through the tunnel.
const DefaultUpTimeout = 15 * time.Second

// UpOptions are the choices of an up that `vpn up` and the tray share,
// each with the same flag (AddUpFlags). The token (and where it comes
// from) is the caller's.
type UpOptions struct {
	// Server is the gateway URL; TokenFile a file holding a bearer token
	// obtained elsewhere (automation), instead of the login cache.
	Server    string
	TokenFile string
	Network   string
	Interface string
	Timeout   time.Duration
	// AllTraffic sends everything through the tunnel; BlockLAN then drops
	// the LAN exceptions; FailClosed keeps the block when the
	// registration expires unrenewed.
	AllTraffic bool
	BlockLAN   bool
	FailClosed bool
	// RouteLAN lets pushes take the LAN into the tunnel; MaxPrefixes
	// bounds how many prefixes the gateway may push.
	RouteLAN    bool
	MaxPrefixes int
	// MTU is --mtu: "" (the gateway's), "auto" or a number of bytes.
	MTU string
}

// AddUpFlags adds the flags of o to fs.
func AddUpFlags(fs *pflag.FlagSet, o *UpOptions) {
	fs.StringVar(&o.Server, "server", "", "gateway URL, e.g. https://vpn.example.com (default: the last one you logged in to)")
	fs.StringVar(&o.TokenFile, "token-file", "", "file holding a bearer token obtained elsewhere (automation); default: log in (cached, refreshed)")
	fs.StringVar(&o.Network, "network", "", "network to join when you belong to several")
	fs.StringVar(&o.Interface, "interface", "", "tunnel interface name (root only; default: env CLEARPATH_INTERFACE or the first free cpN)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultUpTimeout, "how long to wait for traffic through the tunnel")
	fs.BoolVar(&o.AllTraffic, "all-traffic", false, "send all IPv4 and IPv6 traffic through the tunnel (the LAN stays reachable)")
	fs.BoolVar(&o.BlockLAN, "block-lan", false, "with --all-traffic: do not keep the LAN outside the tunnel")
	fs.BoolVar(&o.FailClosed, "fail-closed", false, "with --all-traffic: if the registration expires unrenewed, keep blocking traffic instead of restoring routing")
	fs.BoolVar(&o.RouteLAN, "route-lan", false, "let prefixes the gateway pushes take this machine's LAN, router and resolvers into the tunnel")
	fs.IntVar(&o.MaxPrefixes, "max-prefixes", 0, "most prefixes the gateway may push (default 1000); more are refused")
	fs.StringVar(&o.MTU, "mtu", "", "tunnel MTU in bytes, or auto: measure the path MTU through the tunnel and lower the MTU to it (default: the gateway's)")
}

// Request is the up request o asks for, without the token (nor a token
// file or refresh token: the caller decides what travels). A bad --mtu is
// an error naming it.
func (o *UpOptions) Request() (control.UpRequest, error) {
	req := control.UpRequest{Server: o.Server, Network: o.Network, Interface: o.Interface, Timeout: o.Timeout,
		AllTraffic: o.AllTraffic, BlockLAN: o.BlockLAN, RouteLAN: o.RouteLAN, MaxPrefixes: o.MaxPrefixes, FailClosed: o.FailClosed}
	switch o.MTU {
	case "":
	case "auto":
		req.AutoMTU = true
	default:
		n, err := strconv.Atoi(o.MTU)
		if err != nil || n < control.MinMTU || n > control.MaxMTU {
			return control.UpRequest{}, fmt.Errorf("--mtu %q: want auto or a number of bytes from %d to %d", o.MTU, control.MinMTU, control.MaxMTU)
		}
		req.MTU = n
	}
	return req, nil
}
