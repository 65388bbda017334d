package control

import (
	"strings"
	"testing"
)

// A caller that speaks to the socket directly cannot hand the agent a
// tunnel MTU the kernel or IPv4 would choke on: the request is refused
// before any policy or action.
func TestUpRequestMTUBounds(t *testing.T) {
	for body, want := range map[string]string{
		`{"server":"https://gw","token":"t","mtu":100}`:                  "mtu 100 out of range",
		`{"server":"https://gw","token":"t","mtu":65536}`:                "mtu 65536 out of range",
		`{"server":"https://gw","token":"t","mtu":-1}`:                   "mtu -1 out of range",
		`{"server":"https://gw","token":"t","mtu":1400,"auto_mtu":true}`: "choose one",
		`{"server":"https://gw","token":"t","mtu":1280}`:                 "",
		`{"server":"https://gw","token":"t","auto_mtu":true}`:            "",
	} {
		_, err := DecodeUpRequest(strings.NewReader(body))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
}
