package checkcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// checkConfig writes the example configuration with the API, metrics and
// WireGuard ports given, and the admin socket in a temp dir (no gateway).
func checkConfig(t *testing.T, listen string, wgPort int, extra string) string {
	t.Helper()
	dir := t.TempDir()
	y := strings.Replace(config.Example, `listen: ":8080"`, fmt.Sprintf("listen: %q", listen), 1)
	y = strings.Replace(y, "listen_port: 51820", fmt.Sprintf("listen_port: %d", wgPort), 1)
	y = strings.Replace(y, "listen_port: 51821", fmt.Sprintf("listen_port: %d", wgPort+1), 1)
	y += fmt.Sprintf("\nadmin_socket: %s\nmetrics_listen: \"off\"\n%s", filepath.Join(dir, "admin.sock"), extra)
	p := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runGW runs `check` as vpn-gateway would (args start with "check").
func runGW(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(&out, &out)}
	root := cmdutil.TestRoot(f, NewCmd(f, nil))
	root.SetArgs(args)
	code := cmdutil.Execute(root, "vpn-gateway", &out, nil)
	return out.String(), code
}

// freeUDPPair finds two consecutive free UDP ports (the two networks').
func freeUDPPair(t *testing.T) int {
	for i := 0; i < 50; i++ {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if d, err := net.ListenPacket("udp", fmt.Sprintf(":%d", p+1)); err == nil {
			d.Close()
			return p
		}
	}
	t.Fatal("no two free consecutive UDP ports")
	return 0
}

// check binds the ports the file names: another program's TCP and UDP
// ports are each an error naming the field and how to find the holder;
// free ports pass; --offline skips the probe; --json carries the schema,
// the list of errors and exits 1.
func TestCheckProbesPorts(t *testing.T) {
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	wg := freeUDPPair(t)
	busyUDP, err := net.ListenPacket("udp", fmt.Sprintf(":%d", wg))
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	_, tcpPort, _ := net.SplitHostPort(busyTCP.Addr().String())

	taken := checkConfig(t, busyTCP.Addr().String(), wg, "")
	out, code := runGW(t, "check", "-c", taken)
	if code != 1 || !strings.Contains(out, "2 problem(s)") ||
		!strings.Contains(out, "listen: TCP port "+tcpPort+" is in use by another program (`ss -tlnp 'sport = :"+tcpPort+"'`") ||
		!strings.Contains(out, fmt.Sprintf("networks[0].listen_port: UDP port %d is in use", wg)) {
		t.Errorf("check with both ports taken (exit %d):\n%s", code, out)
	}
	if out, code := runGW(t, "check", "--offline", "-c", taken); code != 0 || !strings.HasSuffix(out, ": ok\n") {
		t.Errorf("check --offline (exit %d):\n%s", code, out)
	}
	out, code = runGW(t, "check", "--json", "-c", taken)
	var rep struct {
		Schema string   `json:"schema"`
		OK     bool     `json:"ok"`
		Errors []string `json:"errors"`
		Notes  []string `json:"notes"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Schema != "clearpath.check/v1" || rep.OK || len(rep.Errors) != 2 || rep.Notes == nil {
		t.Errorf("check --json (exit %d, %v):\n%s", code, err, out)
	}

	busyUDP.Close()
	busyTCP.Close()
	if out, code := runGW(t, "check", "-c", taken); code != 0 || !strings.HasSuffix(out, ": ok\n") {
		t.Errorf("check with the ports free again (exit %d):\n%s", code, out)
	}
}

// Each mistake is one line of its own, in plain words: a typo gets the
// nearest field, a port out of range, a duration in days is accepted.
func TestCheckListsEachMistake(t *testing.T) {
	p := checkConfig(t, ":99999", freeUDPPair(t), "lifecycle:\n  warn_befor: [7d]\n")
	out, code := runGW(t, "check", "--offline", "-c", p)
	if code != 1 || !strings.Contains(out, "warn_befor") || !strings.Contains(out, "did you mean warn_before?") {
		t.Errorf("typo (exit %d):\n%s", code, out)
	}
	p = checkConfig(t, ":99999", freeUDPPair(t), "key_ttl: 90d\n")
	p2, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(p2, []byte("key_ttl: 720h"), nil, 1), 0o644)
	out, code = runGW(t, "check", "--offline", "--json", "-c", p)
	var rep struct{ Errors []string }
	json.Unmarshal([]byte(out), &rep)
	if code != 1 || len(rep.Errors) != 1 || !strings.HasPrefix(rep.Errors[0], `listen: ":99999": port "99999" is not a number from 1 to 65535`) {
		t.Errorf("listen :99999 with key_ttl 90d (exit %d): %q\n%s", code, rep.Errors, out)
	}
}

// While the gateway of the file runs (its admin socket answers), the
// ports it holds are notes, not errors; a new network's port held by
// another program is still an error.
func TestCheckWithTheGatewayRunning(t *testing.T) {
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	wg := freeUDPPair(t)
	eng, err := net.ListenPacket("udp", fmt.Sprintf(":%d", wg))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	other, err := net.ListenPacket("udp", fmt.Sprintf(":%d", wg+1))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	p := checkConfig(t, api.Addr().String(), wg, "")
	sock := filepath.Join(filepath.Dir(p), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"networks":[{"name":"eng","interface":"wg-eng","peers":0}]}`))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	out, code := runGW(t, "check", "--json", "-c", p)
	var rep struct {
		Errors, Notes []string
	}
	json.Unmarshal([]byte(out), &rep)
	if code != 1 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "networks[1].listen_port: UDP port") || len(rep.Notes) != 2 ||
		!strings.Contains(rep.Notes[0], "listen: tcp/"+api.Addr().String()+" is in use by the running gateway") {
		t.Errorf("check beside the running gateway (exit %d):\n%s", code, out)
	}
}

// The flags reach the run hook: --config (given on the root, as the
// binary has it), --json, --offline; the default file without -c.
func TestCheckOptions(t *testing.T) {
	var got *Options
	f := &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root := cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"-c", "/tmp/gw.yaml", "check", "--json", "--offline"})
	if err := root.Execute(); err != nil || got == nil || got.ConfigPath != "/tmp/gw.yaml" || !got.JSON || !got.Offline || got.IO.Out != io.Discard {
		t.Fatalf("check -c /tmp/gw.yaml --json --offline: %v %+v", err, got)
	}
	f = &cmdutil.Factory{IOStreams: cmdutil.Test(io.Discard, io.Discard)}
	root = cmdutil.TestRoot(f, NewCmd(f, func(_ context.Context, o *Options) error { got = o; return nil }))
	root.SetArgs([]string{"check"})
	if err := root.Execute(); err != nil || got.ConfigPath != cmdutil.DefaultConfig || got.JSON {
		t.Fatalf("check: %v %+v", err, got)
	}
	root.SetArgs([]string{"check", "extra"})
	if err := root.Execute(); err == nil {
		t.Error("check took an argument")
	}
}
