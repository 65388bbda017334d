package tray

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestNetworksFromError(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"register with http://gw: gateway refused (409 network_required): pick one [networks: eng, ops]", []string{"eng", "ops"}},
		{"gateway refused (409 network_required): x [networks: solo]", []string{"solo"}},
		{"gateway refused (403 forbidden): not in any group", nil},
		{"[networks: unterminated", nil},
		{"[networks: , ,]", nil},
	} {
		if got := NetworksFromError(errors.New(tc.msg)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.msg, got, tc.want)
		}
	}
	if NetworksFromError(nil) != nil {
		t.Error("nil error gave networks")
	}
}

type netsErr struct{ nets []string }

func (e netsErr) Error() string      { return "typed" }
func (e netsErr) Networks() []string { return e.nets }

func TestNetworksFromTypedError(t *testing.T) {
	if got := NetworksFromError(netsErr{[]string{"a"}}); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("got %q", got)
	}
}

// FuzzNetworksFromError: any message gives names that are non-empty,
// trimmed and free of the list's own punctuation.
func FuzzNetworksFromError(f *testing.F) {
	f.Add("gateway refused (409 network_required): x [networks: eng, ops]")
	f.Add("[networks: ]")
	f.Add("[networks: a,,b] [networks: c]")
	f.Fuzz(func(t *testing.T, msg string) {
		for _, n := range NetworksFromError(errors.New(msg)) {
			if n == "" || n != strings.TrimSpace(n) || strings.ContainsAny(n, ",]") {
				t.Fatalf("bad network name %q from %q", n, msg)
			}
		}
	})
}
