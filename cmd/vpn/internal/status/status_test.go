package status

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/version"
)

func run(t *testing.T, st control.Status, args ...string) string {
	t.Helper()
	dir := t.TempDir() // no cached login
	t.Setenv("CLEARPATH_CONFIG_DIR", dir)
	var out bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, &out)
	cmd := NewCmd(f, func(context.Context) (*control.Status, error) { s := st; return &s, nil })
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("vpn status %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// `vpn status` names the software at both ends: this CLI, the agent that
// holds the tunnel and the gateway that registered it.
func TestStatusShowsBothEndsVersions(t *testing.T) {
	client := version.String()
	up := control.Status{State: control.StateUp, Server: "https://vpn.example.com", Network: "eng", Interface: "cp0",
		Addresses: []string{"100.64.0.2/32"}, AgentVersion: "v1.2.0", GatewayVersion: "v1.1.0"}

	text := run(t, up)
	if want := "versions    client " + client + ", agent v1.2.0, gateway v1.1.0\n"; !strings.Contains(text, want) {
		t.Errorf("vpn status:\n%s\nwant the line %q", text, want)
	}
	var got control.Status
	raw := run(t, up, "--json")
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("vpn status --json: %v\n%s", err, raw)
	}
	if got.ClientVersion != client || got.AgentVersion != "v1.2.0" || got.GatewayVersion != "v1.1.0" {
		t.Errorf("vpn status --json versions: client %q agent %q gateway %q\n%s", got.ClientVersion, got.AgentVersion, got.GatewayVersion, raw)
	}
	for _, key := range []string{`"client_version"`, `"agent_version"`, `"gateway_version"`} {
		if !strings.Contains(raw, key) {
			t.Errorf("vpn status --json lacks %s:\n%s", key, raw)
		}
	}

	// Down with no agent and no registration: the client's version alone.
	text = run(t, control.Status{State: control.StateDown})
	if want := "versions    client " + client + "\n"; !strings.Contains(text, want) {
		t.Errorf("vpn status (down):\n%s\nwant the line %q", text, want)
	}
}

func TestVersionsLeavesOutUnknownParts(t *testing.T) {
	for _, c := range []struct {
		st   control.Status
		want string
	}{
		{control.Status{}, "unknown"},
		{control.Status{ClientVersion: "v1", GatewayVersion: "v0.9"}, "client v1, gateway v0.9"},
		{control.Status{ClientVersion: "v1", AgentVersion: "v0.8", GatewayVersion: "v0.9"}, "client v1, agent v0.8, gateway v0.9"},
	} {
		if got := Versions(&c.st); got != c.want {
			t.Errorf("Versions(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}

// --json carries the schema first, and an empty status's lists are [].
func TestStatusJSONCarriesSchema(t *testing.T) {
	raw := run(t, control.Status{State: control.StateDown}, "--json")
	if !strings.HasPrefix(raw, "{\n  \"schema\": \"clearpath.status/v1\",") {
		t.Fatalf("vpn status --json:\n%s", raw)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m["state"] != "down" {
		t.Fatalf("vpn status --json: %v\n%s", err, raw)
	}
}
