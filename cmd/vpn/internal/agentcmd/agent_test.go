package agentcmd

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

// The flags reach the run hook; the state dir comes from the factory
// (--state-dir), and the socket defaults to the state dir's.
func TestAgentOptions(t *testing.T) {
	dir := t.TempDir()
	var got *Options
	hook := func(_ context.Context, o *Options) error { got = o; return nil }
	cmd := NewCmd(factory.ForTest(dir, io.Discard, io.Discard), hook)
	cmd.SetArgs([]string{"--group", "-", "--server", "https://vpn.example.com", "--fail-closed"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	c := got.Config
	if c.Dir != dir || c.Socket != filepath.Join(dir, "agent.sock") || c.Group != "-" || c.Server != "https://vpn.example.com" || !c.FailClosed {
		t.Errorf("agent: %+v", c)
	}
	cmd = NewCmd(factory.ForTest(dir, io.Discard, io.Discard), hook)
	cmd.SetArgs([]string{"--socket", "/run/x.sock"})
	if err := cmd.Execute(); err != nil || got.Config.Socket != "/run/x.sock" || got.Config.FailClosed {
		t.Errorf("agent --socket: %v %+v", err, got.Config)
	}
	cmd = NewCmd(factory.ForTest(dir, io.Discard, io.Discard), hook)
	cmd.SetArgs([]string{"--ready-fd", "3"})
	if err := cmd.Execute(); err != nil || got.ReadyFD != 3 || !cmd.Flags().Lookup("ready-fd").Hidden {
		t.Errorf("agent --ready-fd: %v %d (hidden: vpn up's alone)", err, got.ReadyFD)
	}
	cmd.SetArgs([]string{"extra"})
	if err := cmd.Execute(); err == nil {
		t.Error("agent took an argument")
	}
}
