package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
		{"unparsed", uint32(VerdictUnparsed), uint32(flowsVerdictVERDICT_UNPARSED)},
		{"over quota", uint32(VerdictOverQuota), uint32(flowsVerdictVERDICT_OVER_QUOTA)},
		{"unparsed event", uint32(EventUnparsed), uint32(flowsEventKindEVENT_UNPARSED)},
		{"quota event", uint32(EventQuota), uint32(flowsEventKindEVENT_QUOTA)},
	} {
		if c.goV != c.cV {
			t.Errorf("%s: Go %d, C %d", c.name, c.goV, c.cV)
		}
	}
}

// loadHelperEnv makes the test binary try Load and print the error
// (TestLoadUnprivileged runs it as nobody).
const loadHelperEnv = "CLEARPATH_BPF_TEST_LOAD"

func init() {
	if os.Getenv(loadHelperEnv) == "" {
		return
	}
	f, err := Load(Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	f.Close()
	os.Exit(0)
}

// Without privileges Load fails and says what is needed.
func TestLoadUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a copy of itself as nobody")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bpf-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bpf.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), loadHelperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "needs root") {
		t.Errorf("Load as nobody: %v, output %q; want a failure saying it needs root", err, out)
	}
}
