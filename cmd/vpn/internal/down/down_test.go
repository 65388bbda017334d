package down

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

func runDown(t *testing.T, res *Result, args ...string) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := factory.ForTest(t.TempDir(), &out, &errOut)
	cmd := NewCmd(f, func(context.Context) (*Result, error) { return res, nil })
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("vpn down %v: %v", args, err)
	}
	return out.String(), errOut.String()
}

// `vpn down --json` prints what happened in the one JSON shape: schema
// first, warnings a list ([] when none); the text keeps its sentences.
func TestDownJSON(t *testing.T) {
	out, _ := runDown(t, &Result{State: "not-connected", Warnings: []string{}}, "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("vpn down --json: %v\n%s", err, out)
	}
	if got["schema"] != "clearpath.down/v1" || got["state"] != "not-connected" || !strings.Contains(out, `"warnings": []`) {
		t.Errorf("vpn down --json:\n%s", out)
	}
	out, errOut := runDown(t, &Result{State: "recovered", Undone: 3, Swept: 1, Warnings: []string{"snapshot unreadable"}})
	if !strings.Contains(out, "3 changes undone, 1 leftovers removed") || errOut != "warning: snapshot unreadable\n" {
		t.Errorf("vpn down text: %q / %q", out, errOut)
	}
	if out, _ := runDown(t, &Result{State: "disconnected"}); out != "Disconnected; routing table restored.\n" {
		t.Errorf("vpn down text: %q", out)
	}
}
