package routes

import (
	"fmt"
	"strings"
)

// String renders r like `ip route` does, with the table always named.
func (r Route) String() string {
	var b strings.Builder
	if r.Type != "" && r.Type != TypeUnicast {
		b.WriteString(string(r.Type) + " ")
	}
	b.WriteString(r.Dst.String())
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Device != "" {
		fmt.Fprintf(&b, " dev %s", r.Device)
	}
	if r.Table != 0 { // macOS has no tables
		fmt.Fprintf(&b, " table %s", TableName(r.Table))
	}
	if r.Protocol != 0 {
		fmt.Fprintf(&b, " proto %d", r.Protocol)
	}
	if r.Scope == 253 {
		b.WriteString(" scope link")
	} else if r.Scope == 254 {
		b.WriteString(" scope host")
	}
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	if r.Metric != 0 {
		fmt.Fprintf(&b, " metric %d", r.Metric)
	}
	return b.String()
}

// String renders r like `ip rule` does.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Priority)
	if r.Invert {
		b.WriteString(" not")
	}
	if r.From.IsValid() {
		fmt.Fprintf(&b, " from %s", r.From)
	} else {
		b.WriteString(" from all")
	}
	if r.To.IsValid() {
		fmt.Fprintf(&b, " to %s", r.To)
	}
	if r.FwMark != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.FwMark)
		if r.FwMask != 0 && r.FwMask != 0xffffffff {
			fmt.Fprintf(&b, "/%#x", r.FwMask)
		}
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, " iif %s", r.IIF)
	}
	if r.OIF != "" {
		fmt.Fprintf(&b, " oif %s", r.OIF)
	}
	switch r.Action {
	case "", "lookup":
		fmt.Fprintf(&b, " lookup %s", TableName(r.Table))
	case "goto":
		fmt.Fprintf(&b, " goto %d", r.Goto)
	default:
		b.WriteString(" " + r.Action)
	}
	if r.SuppressPrefixLen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixLen)
	}
	if r.Protocol != 0 {
		fmt.Fprintf(&b, " proto %d", r.Protocol)
	}
	if r.Family == FamilyV6 {
		return "-6 " + b.String()
	}
	return b.String()
}

// String renders a change as the command that would make it.
func (c Change) String() string {
	switch {
	case c.Route != nil:
		verb := "add"
		if c.Op == OpDelRoute {
			verb = "del"
		}
		fam := ""
		if c.Route.Family == FamilyV6 || c.Route.Dst.Addr().Is6() {
			fam = "-6 "
		}
		return fmt.Sprintf("ip %sroute %s %s", fam, verb, c.Route)
	case c.Rule != nil:
		verb := "add"
		if c.Op == OpDelRule {
			verb = "del"
		}
		s := c.Rule.String()
		fam := ""
		if strings.HasPrefix(s, "-6 ") {
			fam, s = "-6 ", strings.TrimPrefix(s, "-6 ")
		}
		prio, rest, _ := strings.Cut(s, ":")
		return fmt.Sprintf("ip %srule %s priority %s%s", fam, verb, prio, rest)
	case c.Link != nil && c.Op == OpDelLink:
		return "ip link del " + c.Link.Name
	}
	if c.Addr != nil {
		verb := "add"
		if c.Op == OpDelAddr {
			verb = "del"
		}
		nodad := ""
		if c.Addr.NoDAD && c.Addr.Prefix.Addr().Is6() {
			nodad = " nodad"
		}
		return fmt.Sprintf("ip addr %s %s dev %s%s", verb, c.Addr.Prefix, c.Addr.Device, nodad)
	}
	if c.Sysctl != nil {
		return fmt.Sprintf("sysctl %s=%s (was %s)", strings.ReplaceAll(c.Sysctl.Name, "/", "."), c.Sysctl.Value, c.Sysctl.Old)
	}
	return string(c.Op)
}

// TableName names the well-known tables as `ip` does.
func TableName(t int) string {
	switch t {
	case 253:
		return "default"
	case 254:
		return "main"
	case 255:
		return "local"
	}
	return fmt.Sprint(t)
}
