package bpf

import (
	"os"
	"testing"
)

func loadT(t testing.TB, opts Options) *Filter {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs")
	}
	f, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// The committed object passes the verifier of this kernel.
func TestLoad(t *testing.T) {
	f := loadT(t, Options{FlowTableSize: 1024})
	if got := f.objs.Flows.MaxEntries(); got != 1024 {
		t.Errorf("flow table size %d, want 1024", got)
	}
}

// The Go constants mirror the C enums (bpf2go generates the latter only
// for Linux; the former build everywhere).
func TestConstantsMatchC(t *testing.T) {
	for _, c := range []struct {
		name    string
		goV, cV uint32
	}{
		{"allow", uint32(VerdictAllow), uint32(flowsVerdictVERDICT_ALLOW)},
		{"deny", uint32(VerdictDeny), uint32(flowsVerdictVERDICT_DENY)},
		{"unknown source", uint32(VerdictUnknownSource), uint32(flowsVerdictVERDICT_UNKNOWN_SOURCE)},
		{"new flow event", uint32(EventNewFlow), uint32(flowsEventKindEVENT_NEW_FLOW)},
		{"denied event", uint32(EventDenied), uint32(flowsEventKindEVENT_DENIED)},
		{"unknown source event", uint32(EventUnknownSource), uint32(flowsEventKindEVENT_UNKNOWN_SOURCE)},
	} {
		if c.goV != c.cV {
			t.Errorf("%s: Go %d, C %d", c.name, c.goV, c.cV)
		}
	}
}
