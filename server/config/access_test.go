package config

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

const engAllow = `allow: [10.10.0.0/16, "fd10:10::/64"]`

func withAccess(rules string) string {
	return strings.Replace(Example, engAllow, engAllow+"\n"+rules, 1)
}

func TestAccessRules(t *testing.T) {
	c, err := Parse([]byte(withAccess(`    access:
      - users: [Alice@Example.com, sub-bob]
        allow: [10.10.0.10/32, "fd10:10::10/128"]
      - users: [alice@example.com]
        allow: [10.10.5.0/24]`)))
	if err != nil {
		t.Fatal(err)
	}
	eng := c.Networks[0]
	if got, ok := eng.AllowFor("sub-alice", "alice@example.com", nil); !ok || len(got) != 3 {
		t.Errorf("alice (e-mail in another case, two rules): %v %v", got, ok)
	}
	if got, ok := eng.AllowFor("sub-bob", "", nil); !ok || len(got) != 2 {
		t.Errorf("bob by subject: %v %v", got, ok)
	}
	if _, ok := eng.AllowFor("sub-carol", "carol@example.com", nil); ok {
		t.Error("carol is named by no rule: the network's allow applies")
	}
	if p := eng.PolicyFor("sub-carol", "carol@example.com", nil); p.Filtered {
		t.Errorf("carol has a filter policy without any rule naming her or widening: %+v", p)
	}
	got := eng.PolicyFor("sub-bob", "", nil)
	if s := strings.Join(strs(got.Allows()), " "); !strings.Contains(s, "100.64.0.1/32") {
		t.Errorf("the filter list keeps the gateway's tunnel address: %v", s)
	}
	if !c.HasAccessRules() {
		t.Error("HasAccessRules")
	}
}

// Rules by group, ports, widening and the precedence between rules.
func TestAccessGroupsPortsWiden(t *testing.T) {
	c, err := Parse([]byte(withAccess(`    may_widen: [10.99.0.0/16]
    access:
      - groups: [dba]
        allow: ["10.10.0.10/32 tcp/5432", "10.10.0.10/32 icmp", "10.99.0.5/32 tcp/22"]
      - groups: [engineering]
        users: [sub-zed]
        allow: ["10.10.0.0/24 tcp/8000-8100, udp/53"]`)))
	if err != nil {
		t.Fatal(err)
	}
	eng := c.Networks[0]
	alice := eng.PolicyFor("sub-alice", "alice@example.com", []string{"engineering", "dba"})
	if !alice.Filtered || len(alice.Rules) != 2 {
		t.Fatalf("alice (dba, engineering) is named by both rules: %+v", alice)
	}
	want := "10.10.0.10/32 tcp/5432|10.10.0.10/32 icmp|10.99.0.5/32 tcp/22|10.10.0.0/24 tcp/8000-8100 udp/53|100.64.0.1/32|fd00:64::1/128"
	if s := strings.Join(strs(alice.Allows()), "|"); s != want {
		t.Errorf("alice's union:\n got %s\nwant %s", s, want)
	}
	if w := alice.Widened(); len(w) != 1 || w[0].String() != "10.99.0.5/32" {
		t.Errorf("alice widens to %v", w)
	}
	for _, g := range alice.Grants {
		if g.Target.Prefix.String() == "10.99.0.5/32" && (!g.Widen || g.Rule != 0) {
			t.Errorf("the widening grant: %+v", g)
		}
	}
	bob := eng.PolicyFor("sub-bob", "bob@example.com", []string{"engineering"})
	if s := strings.Join(strs(bob.Allows()), "|"); s != "10.10.0.0/24 tcp/8000-8100 udp/53|100.64.0.1/32|fd00:64::1/128" {
		t.Errorf("bob (engineering only): %s", s)
	}
	if zed := eng.PolicyFor("sub-zed", "", nil); len(zed.Rules) != 1 {
		t.Errorf("zed by subject: %+v", zed)
	}
	// A widening network filters everybody: carol, named by no rule, is
	// held to the network's allow by the filter, as the table now routes
	// 10.99.0.5/32 for the whole network.
	carol := eng.PolicyFor("sub-carol", "", []string{"sales"})
	if s := strings.Join(strs(carol.Allows()), "|"); !carol.Filtered || s != "10.10.0.0/16|fd10:10::/64|100.64.0.1/32|fd00:64::1/128" {
		t.Errorf("carol in a widening network: %v %s", carol.Filtered, s)
	}
	if carol.Grants[0].Rule != GrantNetwork {
		t.Errorf("carol's grant should name the network's allow: %+v", carol.Grants[0])
	}
	if w := eng.WidenRoutes(); len(w) != 1 || w[0] != netip.MustParsePrefix("10.99.0.5/32") {
		t.Errorf("WidenRoutes = %v", w)
	}
}

// Every bad input is refused with an error naming its field.
func TestAccessBadInput(t *testing.T) {
	rule := func(s string) string { return "    access:\n" + s }
	for name, c := range map[string]struct{ doc, want string }{
		"outside allow":        {rule("      - users: [alice@example.com]\n        allow: [10.20.0.0/24]"), "networks[0].access[0].allow[0]: 10.20.0.0/24 is outside the network's allow [10.10.0.0/16 fd10:10::/64]: rules only narrow it, unless the network lists where they may widen to (may_widen)"},
		"wider than allow":     {rule("      - users: [alice@example.com]\n        allow: [10.0.0.0/8]"), "networks[0].access[0].allow[0]: 10.0.0.0/8 is outside the network's allow"},
		"host bits":            {rule("      - users: [alice@example.com]\n        allow: [10.10.0.1/24]"), "networks[0].access[0].allow[0]: 10.10.0.1/24 has host bits set (did you mean 10.10.0.0/24?)"},
		"nobody":               {rule("      - users: []\n        allow: [10.10.0.0/24]"), "networks[0].access[0]: name at least one user (users: e-mail or token subject) or group"},
		"no allow":             {rule("      - users: [alice@example.com]"), "networks[0].access[0].allow: at least one entry is required"},
		"user with spaces":     {rule("      - users: [\" alice\"]\n        allow: [10.10.0.0/24]"), "networks[0].access[0].users[0]: \" alice\" is empty or has spaces"},
		"empty group":          {rule("      - groups: [\"\"]\n        allow: [10.10.0.0/24]"), "networks[0].access[0].groups[0]: \"\" is empty or has spaces"},
		"unknown protocol":     {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 sctp/5\"]"), "networks[0].access[0].allow[0] (line"},
		"unknown protocol msg": {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 sctp/5\"]"), `unknown protocol "sctp"`},
		"port zero":            {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 tcp/0\"]"), "tcp/0: ports are 1-65535"},
		"port too big":         {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 udp/65536\"]"), "udp/65536: ports are 1-65535"},
		"port not a number":    {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 tcp/pg\"]"), "tcp/pg: ports are 1-65535"},
		"backwards range":      {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 tcp/9000-8000\"]"), "tcp/9000-8000: the range runs backwards"},
		"no port":              {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 tcp\"]"), "tcp: name the port"},
		"icmp with a port":     {rule("      - groups: [dba]\n        allow: [\"10.10.0.10/32 icmp/8\"]"), "icmp takes no port"},
		"address not prefix":   {rule("      - groups: [dba]\n        allow: [\"10.10.0.10 tcp/22\"]"), "did you mean 10.10.0.10/32?"},
		"not a prefix":         {rule("      - groups: [dba]\n        allow: [\"db.internal tcp/22\"]"), "db.internal is not a prefix"},
		"empty entry":          {rule("      - groups: [dba]\n        allow: [\"\"]"), "empty; write a prefix"},
		"entry is a map":       {rule("      - groups: [dba]\n        allow: [{to: 10.10.0.10/32}]"), "an allow entry is a string"},
		"widen outside":        {"    may_widen: [10.99.0.0/16]\n" + rule("      - groups: [dba]\n        allow: [10.98.0.0/24]"), "networks[0].access[0].allow[0]: 10.98.0.0/24 is outside the network's allow [10.10.0.0/16 fd10:10::/64] and its may_widen [10.99.0.0/16]"},
		"may_widen in allow":   {"    may_widen: [10.10.1.0/24]\n", "networks[0].may_widen[0]: 10.10.1.0/24 is inside the network's allow"},
		"may_widen host bits":  {"    may_widen: [10.99.0.1/16]\n", "networks[0].may_widen[0]: 10.99.0.1/16 has host bits set"},
		"too many port ranges": {rule("      - groups: [dba]\n        allow: [\"10.10.0.0/16 " + manyPorts(9, 0) + "\"]\n      - groups: [ops]\n        allow: [\"10.10.0.10/32 " + manyPorts(8, 1) + "\"]"), "networks[0].access[1].allow[0]: 17 port ranges apply to 10.10.0.10/32"},
		"access, filter off":   {rule("      - users: [a@x]\n        allow: [10.10.0.0/24]") + "\nflows:\n  filter: \"off\"\n", "networks[0].access: needs the eBPF filter"},
		"widen, filter off":    {"    may_widen: [10.99.0.0/16]\n" + "\nflows:\n  filter: \"off\"\n", "networks[0].may_widen: needs the eBPF filter"},
		"unknown rule field":   {rule("      - group: [dba]\n        allow: [10.10.0.0/24]"), "networks[0].access[0].group"},
	} {
		doc := withAccess(c.doc)
		if strings.Contains(c.doc, "flows:") {
			i := strings.Index(c.doc, "\nflows:")
			doc = withAccess(c.doc[:i]) + c.doc[i:]
		}
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\nwant %q", name, err, c.want)
		}
	}
}

// manyPorts is n single tcp ports, odd offsets apart so none merge.
func manyPorts(n, offset int) string {
	var s []string
	for i := range n {
		s = append(s, "tcp/"+itoa(1000+4*i+2*offset))
	}
	return strings.Join(s, " ")
}

func itoa(i int) string { return strconv.Itoa(i) }

func strs[T interface{ String() string }](xs []T) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}
