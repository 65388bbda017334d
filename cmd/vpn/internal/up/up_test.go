package up

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/local"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/progress"
)

type slowAgent struct{ wait time.Duration }

func (a slowAgent) Up(ctx context.Context, req control.UpRequest) (*control.Status, error) {
	time.Sleep(a.wait)
	return &control.Status{State: control.StateUp, Server: req.Server, Network: "eng", Interface: "cp0", Addresses: []string{"100.64.0.2/32"}}, nil
}

// A slow bring-up names what it waits for on a terminal, and the line is
// gone when it connects; --json output carries the status schema.
func TestUpShowsTheWaitOnATerminal(t *testing.T) {
	var out, errOut bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, &errOut)
	o := &Options{UpOptions: local.UpOptions{Server: "https://vpn.example.com"}, progress: progress.Forced(&errOut, 20*time.Millisecond)}
	if err := connect(context.Background(), f, slowAgent{150 * time.Millisecond}, o, "tok", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "waiting for the tunnel: registration at https://vpn.example.com, handshake, a reply through it") || !strings.HasSuffix(errOut.String(), "\r\033[K") {
		t.Errorf("stderr: %q", errOut.String())
	}
	if !strings.HasPrefix(out.String(), "Connected to https://vpn.example.com (network eng)") {
		t.Errorf("stdout: %q", out.String())
	}
	out.Reset()
	o.JSON = true
	o.progress = nil // as off a terminal
	errOut.Reset()
	if err := connect(context.Background(), f, slowAgent{0}, o, "tok", time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["schema"] != "clearpath.status/v1" || errOut.Len() != 0 {
		t.Errorf("vpn up --json: %v %s (stderr %q)", err, out.String(), errOut.String())
	}
}
