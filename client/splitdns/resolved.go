package splitdns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// systemd-resolved over D-Bus (org.freedesktop.resolve1): with resolved in
// charge of the machine's DNS, the tunnel's link gets the pushed servers
// and its routing domains ("~corp.internal"), so resolved itself splits by
// domain; resolv.conf is not touched. The settings belong to the link and
// vanish with it (the wireguard-go device goes when the agent dies); the
// journal still records them and RevertLink undoes them on down.
const (
	resolvedName  = "org.freedesktop.resolve1"
	resolvedPath  = "/org/freedesktop/resolve1"
	resolvedIface = "org.freedesktop.resolve1.Manager"
	// ResolvedStub is resolved's stub listener, what resolv.conf names
	// when resolved is in use.
	ResolvedStub = "127.0.0.53"
)

// linkDNS is resolved's (iay): address family and bytes.
type linkDNS struct {
	Family  int32
	Address []byte
}

// linkDomain is resolved's (sb): a domain and whether it only routes
// (the "~" of resolvectl) rather than also being a search domain.
type linkDomain struct {
	Domain    string
	RouteOnly bool
}

// Resolved drives systemd-resolved's per-link settings.
type Resolved struct {
	conn *dbus.Conn
	obj  dbus.BusObject
}

// NewResolved uses resolved on conn (the system bus, or a test's).
func NewResolved(conn *dbus.Conn) *Resolved {
	return &Resolved{conn: conn, obj: conn.Object(resolvedName, resolvedPath)}
}

// SystemResolved returns resolved on the system bus when it runs and the
// machine's resolv.conf names its stub (so the C library asks it); nil
// otherwise (then the agent's own stub is used).
func SystemResolved(resolvConf string) *Resolved {
	b, err := os.ReadFile(resolvConf)
	if err != nil || !namesServer(b, ResolvedStub) {
		return nil
	}
	conn, err := dbus.SystemBus()
	if err != nil {
		return nil
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, resolvedName).Store(&has); err != nil || !has {
		return nil
	}
	return NewResolved(conn)
}

func namesServer(conf []byte, addr string) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" && f[1] == addr {
			return true
		}
	}
	return false
}

// LinkArgs are the arguments of SetLinkDNS and SetLinkDomains for the
// pushed servers and routing domains; all adds "~." (every name goes to
// this link: a full tunnel without routing domains).
func LinkArgs(servers []netip.Addr, domains []string, all bool) ([]linkDNS, []linkDomain) {
	var ds []linkDNS
	for _, a := range servers {
		fam := int32(2) // AF_INET
		if a.Is6() && !a.Is4In6() {
			fam = 10 // AF_INET6
		}
		ds = append(ds, linkDNS{Family: fam, Address: a.Unmap().AsSlice()})
	}
	var doms []linkDomain
	for _, d := range domains {
		doms = append(doms, linkDomain{Domain: d, RouteOnly: true})
	}
	if all {
		doms = append(doms, linkDomain{Domain: ".", RouteOnly: true})
	}
	return ds, doms
}

// SetLink gives the link ifindex the servers and routing domains; with
// all it also becomes resolved's default route for DNS.
func (r *Resolved) SetLink(ifindex int, servers []netip.Addr, domains []string, all bool) error {
	ds, doms := LinkArgs(servers, domains, all)
	if err := r.obj.Call(resolvedIface+".SetLinkDNS", 0, int32(ifindex), ds).Err; err != nil {
		return fmt.Errorf("systemd-resolved SetLinkDNS: %w", err)
	}
	if err := r.obj.Call(resolvedIface+".SetLinkDomains", 0, int32(ifindex), doms).Err; err != nil {
		return fmt.Errorf("systemd-resolved SetLinkDomains: %w", err)
	}
	err := r.obj.Call(resolvedIface+".SetLinkDefaultRoute", 0, int32(ifindex), all).Err
	var de dbus.Error
	if err != nil && !(errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.UnknownMethod") {
		return fmt.Errorf("systemd-resolved SetLinkDefaultRoute: %w", err)
	}
	return nil
}

// Revert drops everything set on the link.
func (r *Resolved) Revert(ifindex int) error {
	if err := r.obj.Call(resolvedIface+".RevertLink", 0, int32(ifindex)).Err; err != nil {
		return fmt.Errorf("systemd-resolved RevertLink: %w", err)
	}
	return nil
}

// PointResolved journals the link's settings, then makes them.
func PointResolved(stateDir string, r *Resolved, link string, ifindex int, servers []netip.Addr, domains []string, all bool) error {
	if _, err := os.Lstat(stateDir + "/" + JournalFile); err == nil {
		return fmt.Errorf("a DNS journal of an earlier session is still in %s: run `vpn routes restore`", stateDir)
	}
	if err := writeJournal(stateDir, Journal{Mode: ModeResolved, Link: link, Index: ifindex, Servers: addrStrings(servers), Domains: domains, All: all, PID: os.Getpid(), At: time.Now().UTC()}); err != nil {
		return err
	}
	if err := r.SetLink(ifindex, servers, domains, all); err != nil {
		r.Revert(ifindex)
		os.Remove(stateDir + "/" + JournalFile)
		return err
	}
	return nil
}

// revertResolved undoes a journaled link: only if a link of that index
// and name still exists (the settings went with the link otherwise).
var revertResolved = func(j Journal) error {
	ifc, err := net.InterfaceByIndex(j.Index)
	if err != nil || ifc.Name != j.Link {
		return nil
	}
	conn, err := dbus.SystemBus()
	if err != nil {
		return fmt.Errorf("system bus: %w", err)
	}
	return NewResolved(conn).Revert(j.Index)
}

// Claims are the routing and search domains systemd-resolved holds for
// the links given (index -> name) other than skip (our tunnel's): what
// another VPN set on its own link. A link resolved does not know is
// skipped.
func (r *Resolved) Claims(links map[int]string, skip int) ([]DomainClaim, error) {
	var out []DomainClaim
	idx := make([]int, 0, len(links))
	for i := range links {
		if i != skip {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		var path dbus.ObjectPath
		if err := r.obj.Call(resolvedIface+".GetLink", 0, int32(i)).Store(&path); err != nil {
			continue // no such link for resolved
		}
		var doms []linkDomain
		prop, err := r.conn.Object(resolvedName, path).GetProperty("org.freedesktop.resolve1.Link.Domains")
		if err != nil {
			return out, fmt.Errorf("systemd-resolved link %s domains: %w", links[i], err)
		}
		if err := prop.Store(&doms); err != nil {
			return out, fmt.Errorf("systemd-resolved link %s domains: %w", links[i], err)
		}
		for _, d := range doms {
			dom := d.Domain
			if d.RouteOnly {
				dom = "~" + dom
			}
			out = append(out, DomainClaim{Source: fmt.Sprintf("systemd-resolved link %s (ifindex %d)", links[i], i), Domain: dom, Index: i})
		}
	}
	return out, nil
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
