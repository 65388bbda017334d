package config

import (
	"strings"
	"testing"
)

func withEngLocalPorts(list string) string {
	return strings.Replace(Example, "    # table: 1000", "    local_ports: "+list+"\n    # table: 1000", 1)
}

func TestLocalPortsParse(t *testing.T) {
	c, err := Parse([]byte(withEngLocalPorts("[udp/53, tcp/53, tcp/8443]")))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Networks[0].Ports()
	want := []LocalPort{{"udp", 53}, {"tcp", 53}, {"tcp", 8443}}
	if len(got) != len(want) {
		t.Fatalf("ports = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ports[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if len(c.Networks[1].Ports()) != 0 {
		t.Errorf("ops has no local_ports, got %v", c.Networks[1].Ports())
	}
}

// A bad entry is named by its index and says what is wrong with it.
func TestLocalPortsErrorsNameTheEntry(t *testing.T) {
	cases := []struct{ list, want string }{
		{"[udp/53, 53]", `networks[0].local_ports[1]: "53" is not protocol/port`},
		{"[icmp/8]", `networks[0].local_ports[0]: "icmp/8": protocol "icmp" is not tcp or udp`},
		{"[UDP/53]", `networks[0].local_ports[0]: "UDP/53": protocol "UDP" is not tcp or udp`},
		{"[tcp/0]", `networks[0].local_ports[0]: "tcp/0": port "0" is not a number in 1-65535`},
		{"[tcp/65536]", `networks[0].local_ports[0]: "tcp/65536": port "65536"`},
		{"[tcp/dns]", `networks[0].local_ports[0]: "tcp/dns": port "dns"`},
		{"[tcp/+53]", `networks[0].local_ports[0]: "tcp/+53"`},
		{"[tcp/53-60]", `networks[0].local_ports[0]: "tcp/53-60"`},
		{"[tcp/53, udp/53, tcp/53]", `networks[0].local_ports[2]: tcp/53 is listed twice (also local_ports[0])`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(withEngLocalPorts(c.list)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("local_ports: %s: got %v, want an error containing %q", c.list, err, c.want)
		}
	}
}
