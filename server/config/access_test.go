package config

import (
	"net/netip"
	"strings"
	"testing"
)

const engAllow = `allow: [10.10.0.0/16, "fd10:10::/64"]`

func TestAccessRules(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(Example, engAllow, engAllow+"\n    access:\n      - users: [Alice@Example.com, sub-bob]\n        allow: [10.10.0.10/32, \"fd10:10::10/128\"]\n      - users: [alice@example.com]\n        allow: [10.10.5.0/24]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	eng := c.Networks[0]
	if got, ok := eng.AllowFor("sub-alice", "alice@example.com"); !ok || len(got) != 3 {
		t.Errorf("alice (e-mail in another case, two rules): %v %v", got, ok)
	}
	if got, ok := eng.AllowFor("sub-bob", ""); !ok || len(got) != 2 {
		t.Errorf("bob by subject: %v %v", got, ok)
	}
	if _, ok := eng.AllowFor("sub-carol", "carol@example.com"); ok {
		t.Error("carol is named by no rule: the network's allow applies")
	}
	got, _ := eng.FilterAllowFor("sub-bob", "")
	if !strings.Contains(strings.Trim(strings.Join(strs(got), " "), " "), "100.64.0.1/32") {
		t.Errorf("the filter list keeps the gateway's tunnel address: %v", got)
	}
	if !c.HasAccessRules() {
		t.Error("HasAccessRules")
	}
	for rule, want := range map[string]string{
		"      - users: [alice@example.com]\n        allow: [10.20.0.0/24]": "networks[0].access[0].allow[0]: 10.20.0.0/24 is outside the network's allow",
		"      - users: [alice@example.com]\n        allow: [10.0.0.0/8]":   "outside the network's allow",
		"      - users: [alice@example.com]\n        allow: [10.10.0.1/24]": "host bits set",
		"      - users: []\n        allow: [10.10.0.0/24]":                  "networks[0].access[0].users: name at least one user",
		"      - users: [alice@example.com]":                                "networks[0].access[0].allow: at least one prefix",
		"      - users: [\" alice\"]\n        allow: [10.10.0.0/24]":        "networks[0].access[0].users[0]",
	} {
		_, err := Parse([]byte(strings.Replace(Example, engAllow, engAllow+"\n    access:\n"+rule, 1)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", rule, err, want)
		}
	}
	_, err = Parse([]byte(strings.Replace(Example, engAllow, engAllow+"\n    access:\n      - users: [a@x]\n        allow: [10.10.0.0/24]", 1) + "\nflows:\n  filter: \"off\"\n"))
	if err == nil || !strings.Contains(err.Error(), "networks[0].access: needs the eBPF filter") {
		t.Errorf("access with the filter off: %v", err)
	}
}

func strs(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
