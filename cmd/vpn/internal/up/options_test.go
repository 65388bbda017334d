package up

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

// The flags reach the run hook; a bad --mtu is refused by Run before any
// login or agent.
func TestUpOptions(t *testing.T) {
	f := factory.ForTest(t.TempDir(), io.Discard, io.Discard)
	var got *Options
	cmd := NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--server", "https://vpn.example.com", "--network", "eng", "--interface", "cp3", "--timeout", "30s", "--json",
		"--all-traffic", "--block-lan", "--max-prefixes", "50", "--rotate-key", "--mtu", "auto", "--fail-closed", "--device", "--ca-file", "/ca.pem"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Server != "https://vpn.example.com" || got.Network != "eng" || got.Interface != "cp3" || got.Timeout != 30*time.Second || !got.JSON ||
		!got.AllTraffic || !got.BlockLAN || got.RouteLAN || got.MaxPrefixes != 50 || !got.RotateKey || got.MTU != "auto" || !got.FailClosed ||
		!got.Login.Device || got.Login.Trust.CAFile != "/ca.pem" {
		t.Errorf("up: %+v", got)
	}
	t.Setenv("CLEARPATH_CONFIG_DIR", t.TempDir())
	if err := Run(context.Background(), f, &Options{UpOptions: local.UpOptions{MTU: "99999"}}); err == nil || !strings.Contains(err.Error(), `--mtu "99999"`) {
		t.Errorf("--mtu 99999: %v", err)
	}
}
