package hostguard

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Option changes where Apply and Remove act.
type Option func(*[]nftables.ConnOption)

// InNetNS acts in the network namespace open at fd (tests: a lab node);
// by default the caller's namespace.
func InNetNS(fd int) Option {
	return func(o *[]nftables.ConnOption) { *o = append(*o, nftables.WithNetNSFd(fd)) }
}

func conn(opts []Option) (*nftables.Conn, error) {
	var co []nftables.ConnOption
	for _, o := range opts {
		o(&co)
	}
	c, err := nftables.New(co...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink: %w", err)
	}
	return c, nil
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// Apply makes table inet clearpath_gw hold exactly the rules of s, in one
// transaction: the table is created if missing (so the delete that follows
// cannot fail), deleted with whatever it held (a previous run's rules),
// and built again. The kernel applies all of it or nothing.
func Apply(s Spec, opts ...Option) error {
	c, err := conn(opts)
	if err != nil {
		return err
	}
	t := table()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: ChainName, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(Priority), Policy: &policy})
	for _, r := range Plan(s) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: Exprs(r), UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: install table inet %s (%d networks): %w", TableName, len(s.Networks), err)
	}
	return nil
}

// Remove deletes table inet clearpath_gw if it exists, and nothing else.
func Remove(opts ...Option) error {
	c, err := conn(opts)
	if err != nil {
		return err
	}
	t := table()
	c.AddTable(t) // a no-op when it exists; makes the delete unconditional
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table inet %s: %w", TableName, err)
	}
	return nil
}

// Exists reports whether table inet clearpath_gw exists.
func Exists(opts ...Option) (bool, error) {
	c, err := conn(opts)
	if err != nil {
		return false, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// Exprs are the nftables expressions of r, as nft would compile its
// String(): every match loads a field into register 1 and compares it.
func Exprs(r Rule) []expr.Any {
	var es []expr.Any
	match := func(load expr.Any, data []byte) {
		es = append(es, load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data})
	}
	meta := func(k expr.MetaKey) expr.Any { return &expr.Meta{Key: k, Register: 1} }
	payload := func(base expr.PayloadBase, off, n uint32) expr.Any {
		return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
	}
	match(meta(expr.MetaKeyIIFNAME), ifname(r.Iface))
	if r.Daddr.IsValid() {
		if r.Daddr.Is4() {
			match(meta(expr.MetaKeyNFPROTO), []byte{unix.NFPROTO_IPV4})
			match(payload(expr.PayloadBaseNetworkHeader, 16, 4), r.Daddr.AsSlice())
		} else {
			match(meta(expr.MetaKeyNFPROTO), []byte{unix.NFPROTO_IPV6})
			match(payload(expr.PayloadBaseNetworkHeader, 24, 16), r.Daddr.AsSlice())
		}
	}
	switch r.Proto {
	case "icmp":
		match(meta(expr.MetaKeyL4PROTO), []byte{unix.IPPROTO_ICMP})
		match(payload(expr.PayloadBaseTransportHeader, 0, 1), []byte{8}) // echo-request
	case "icmpv6":
		match(meta(expr.MetaKeyL4PROTO), []byte{unix.IPPROTO_ICMPV6})
		match(payload(expr.PayloadBaseTransportHeader, 0, 1), []byte{128}) // echo-request
	case "tcp", "udp":
		proto := byte(unix.IPPROTO_TCP)
		if r.Proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		match(meta(expr.MetaKeyL4PROTO), []byte{proto})
		match(payload(expr.PayloadBaseTransportHeader, 2, 2), binary.BigEndian.AppendUint16(nil, r.DPort))
	}
	if r.Drop {
		es = append(es, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	} else {
		es = append(es, &expr.Verdict{Kind: expr.VerdictAccept})
	}
	return es
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// Live reads the chain of table inet clearpath_gw as the kernel holds it
// (exists false when there is no such table).
func Live(opts ...Option) (exists bool, rules []LiveRule, err error) {
	if exists, err = Exists(opts...); err != nil || !exists {
		return exists, nil, err
	}
	c, err := conn(opts)
	if err != nil {
		return true, nil, err
	}
	rs, err := c.GetRules(table(), &nftables.Chain{Name: ChainName, Table: table()})
	if err != nil {
		return true, nil, fmt.Errorf("nftables: list chain inet %s %s: %w", TableName, ChainName, err)
	}
	for _, r := range rs {
		lr := LiveRule{}
		lr.Comment, _ = userdata.GetString(r.UserData, userdata.TypeComment)
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Counter:
				lr.Packets = e.Packets
			case *expr.Verdict:
				lr.Drop = e.Kind == expr.VerdictDrop
			}
		}
		rules = append(rules, lr)
	}
	return true, rules, nil
}
