package tunnel

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestIfconfigArgsAreWgQuicks(t *testing.T) {
	got := ifconfigArgs("utun5", []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32"), netip.MustParsePrefix("fd00:64::2/128")})
	want := [][]string{
		{"utun5", "inet", "100.64.0.2/32", "100.64.0.2", "alias"},
		{"utun5", "inet6", "fd00:64::2/128", "alias"},
		{"utun5", "up"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestUtunNames(t *testing.T) {
	for _, ok := range []string{"utun", "utun0", "utun12"} {
		if err := checkUtunName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"cp0", "utun-1", "utunX", "", "wg0"} {
		if err := checkUtunName(bad); err == nil || !strings.Contains(err.Error(), "utun or utunN") {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}
