// Package packaging holds what ships beside the binaries (systemd units, the
// launchd daemon, the release tooling in dist/); its tests check them.
package packaging

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// clientStateDir is the client's default state dir (vpn, vpn-tray).
const clientStateDir = control.DefaultStateDir

// unit reads a systemd unit file: section -> key -> values (in order).
func unit(t *testing.T, name string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			sec = strings.Trim(line, "[]")
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("%s: line %q is not key=value in a section", name, line)
			}
			u[sec][k] = append(u[sec][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func one(t *testing.T, u map[string]map[string][]string, key string) string {
	t.Helper()
	v := u["Service"][key]
	if len(v) != 1 {
		t.Fatalf("[Service] %s set %d times (%q), want once", key, len(v), v)
	}
	return v[0]
}

// The units say what the rest of the project assumes: the agent's state
// dir is the CLI's, the gateway's is the configuration's default, reload is
// SIGHUP, and the gateway keeps only the capabilities it uses.
func TestUnitsMatchTheProgramsDefaults(t *testing.T) {
	a := unit(t, "clearpath-agent.service")
	for key, want := range map[string]string{
		"ExecStart":          "/usr/bin/vpn agent --state-dir " + clientStateDir,
		"User":               "",
		"RuntimeDirectory":   "clearpath",
		"StateDirectory":     strings.TrimPrefix(clientStateDir, "/var/lib/"),
		"StateDirectoryMode": "0700",
		"Restart":            "always", // `vpn down` ends the agent
		"NoNewPrivileges":    "yes",
	} {
		if want == "" {
			if v, ok := a["Service"][key]; ok {
				t.Errorf("agent: %s=%q, want unset (root)", key, v)
			}
			continue
		}
		if got := one(t, a, key); got != want {
			t.Errorf("agent: %s=%q, want %q", key, got, want)
		}
	}

	g := unit(t, "clearpath-gateway.service")
	def, err := config.Parse([]byte(config.Example))
	if err != nil {
		t.Fatalf("the example configuration the package ships: %v", err)
	}
	if !strings.HasPrefix(def.StateDir, "/var/lib/") {
		t.Fatalf("config example state_dir %q is not under /var/lib", def.StateDir)
	}
	caps := "CAP_NET_ADMIN CAP_BPF CAP_PERFMON CAP_NET_BIND_SERVICE"
	for key, want := range map[string]string{
		"ExecStart":             "/usr/bin/vpn-gateway serve --config /etc/clearpath/gateway.yaml",
		"ExecReload":            "/bin/sh -c 'kill -HUP ${MAINPID}'",
		"CapabilityBoundingSet": caps,
		"AmbientCapabilities":   caps,
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"NoNewPrivileges":       "yes",
		"StateDirectory":        strings.TrimPrefix(def.StateDir, "/var/lib/"),
		"StateDirectoryMode":    "0700",
		"RuntimeDirectory":      "wireguard", // wireguard-go's UAPI sockets, writable under strict
		"ReadWritePaths":        "/proc/sys/net",
	} {
		if got := one(t, g, key); got != want {
			t.Errorf("gateway: %s=%q, want %q", key, got, want)
		}
	}
	if def.AdminSocket != def.StateDir+"/admin.sock" || filepath.Dir(def.Store) != def.StateDir || filepath.Dir(def.Flows.Log) != def.StateDir {
		t.Errorf("the gateway writes outside its state dir %s (admin %s, store %s, flows %s): add it to ReadWritePaths",
			def.StateDir, def.AdminSocket, def.Store, def.Flows.Log)
	}
}

// systemd-analyze verify accepts both units with nothing to say (a typo in
// a key is only a warning, so any output fails the test). The binaries are
// stand-ins at the same names: verify checks that they exist.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install -y systemd): units not verified")
	}
	units, _ := filepath.Glob("systemd/*.service")
	if len(units) != 2 {
		t.Fatalf("units: %v", units)
	}
	verify := func(t *testing.T, edit func(string) string) string {
		dir := t.TempDir()
		bin := filepath.Join(dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"vpn", "vpn-gateway"} {
			if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		var paths []string
		for _, u := range units {
			data, err := os.ReadFile(u)
			if err != nil {
				t.Fatal(err)
			}
			text := edit(strings.ReplaceAll(string(data), "/usr/bin/", bin+"/"))
			p := filepath.Join(dir, filepath.Base(u))
			if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		// Man pages are generated at dist time (make dist), not installed here.
		out, err := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return string(out)
	}
	if out := verify(t, func(s string) string { return s }); out != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	// The check can fail: a misspelt key and a missing program are reported.
	if out := verify(t, func(s string) string { return strings.Replace(s, "ProtectSystem=", "ProtectSytem=", 1) }); !strings.Contains(out, "ProtectSytem") {
		t.Errorf("a misspelt key went unreported: %q", out)
	}
	if out := verify(t, func(s string) string { return strings.Replace(s, "/bin/vpn", "/bin/vpn-missing", 1) }); !strings.Contains(out, "vpn-missing") {
		t.Errorf("a missing program went unreported: %q", out)
	}
}

// plistValue is one value of an XML property list.
type plistValue struct {
	Kind  string // string, integer, true, false, array, dict, ...
	Text  string
	Items []plistValue
	Dict  map[string]plistValue
}

func decodePlist(r io.Reader) (plistValue, error) {
	d := xml.NewDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			return plistValue{}, fmt.Errorf("no <plist>: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return plistValue{}, fmt.Errorf("root element <%s>, want <plist>", se.Name.Local)
			}
			if v := attr(se, "version"); v != "1.0" {
				return plistValue{}, fmt.Errorf("plist version %q, want 1.0", v)
			}
			vals, err := decodeValues(d, "plist")
			if err != nil {
				return plistValue{}, err
			}
			if len(vals) != 1 {
				return plistValue{}, fmt.Errorf("<plist> holds %d values, want 1", len(vals))
			}
			return vals[0], nil
		}
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// decodeValues reads values until the end of the element named end.
func decodeValues(d *xml.Decoder, end string) ([]plistValue, error) {
	var vals []plistValue
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			if tok.Name.Local != end {
				return nil, fmt.Errorf("</%s> inside <%s>", tok.Name.Local, end)
			}
			return vals, nil
		case xml.CharData:
			if strings.TrimSpace(string(tok)) != "" {
				return nil, fmt.Errorf("text %q inside <%s>", tok, end)
			}
		case xml.StartElement:
			v := plistValue{Kind: tok.Name.Local}
			switch v.Kind {
			case "string", "integer", "real", "date", "data", "key":
				var s string
				if err := d.DecodeElement(&s, &tok); err != nil {
					return nil, err
				}
				v.Text = s
			case "true", "false":
				if err := d.Skip(); err != nil {
					return nil, err
				}
			case "array":
				if v.Items, err = decodeValues(d, "array"); err != nil {
					return nil, err
				}
			case "dict":
				items, err := decodeValues(d, "dict")
				if err != nil {
					return nil, err
				}
				if len(items)%2 != 0 {
					return nil, errors.New("<dict> with a key and no value")
				}
				v.Dict = map[string]plistValue{}
				for i := 0; i < len(items); i += 2 {
					if items[i].Kind != "key" || items[i+1].Kind == "key" {
						return nil, fmt.Errorf("<dict> entry %d is <%s><%s>, want <key> then a value", i/2, items[i].Kind, items[i+1].Kind)
					}
					if _, dup := v.Dict[items[i].Text]; dup {
						return nil, fmt.Errorf("<dict> key %q twice", items[i].Text)
					}
					v.Dict[items[i].Text] = items[i+1]
				}
			default:
				return nil, fmt.Errorf("<%s> is not a property list element", v.Kind)
			}
			vals = append(vals, v)
		}
	}
}

// The macOS LaunchDaemon is a well-formed property list that runs `vpn
// agent` as root on the CLI's state dir, at boot and again after `vpn
// down` ends it.
func TestLaunchDaemonPlist(t *testing.T) {
	const label = "dev.clearpath.agent"
	f, err := os.Open(filepath.Join("launchd", label+".plist"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := decodePlist(f)
	if err != nil {
		t.Fatalf("%s: %v", f.Name(), err)
	}
	if v.Kind != "dict" {
		t.Fatalf("top-level <%s>, want <dict>", v.Kind)
	}
	str := func(k string) string {
		if v.Dict[k].Kind != "string" {
			t.Errorf("%s is <%s>, want <string>", k, v.Dict[k].Kind)
		}
		return v.Dict[k].Text
	}
	if got := str("Label"); got != label {
		t.Errorf("Label %q, want %q (the file name)", got, label)
	}
	if got := str("UserName"); got != "root" {
		t.Errorf("UserName %q, want root", got)
	}
	var args []string
	for _, a := range v.Dict["ProgramArguments"].Items {
		args = append(args, a.Text)
	}
	if want := []string{"/usr/local/bin/vpn", "agent", "--state-dir", clientStateDir}; !slices.Equal(args, want) {
		t.Errorf("ProgramArguments %q, want %q", args, want)
	}
	for _, k := range []string{"RunAtLoad", "KeepAlive"} {
		if v.Dict[k].Kind != "true" {
			t.Errorf("%s is <%s>, want <true/>", k, v.Dict[k].Kind)
		}
	}
	if str("StandardErrorPath") == "" {
		t.Error("no StandardErrorPath: the agent's log would be lost")
	}

	// The parser is strict enough to catch what launchd would refuse.
	for _, bad := range []string{
		`<plist version="1.0"><dict><key>Label</key></dict></plist>`,
		`<plist version="1.0"><dict><key>A</key><string>x</string><key>A</key><string>y</string></dict></plist>`,
		`<plist version="1.0"><dict><string>x</string><key>A</key></dict></plist>`,
		`<plist version="1.0"><dict><key>A</key><strin>x</strin></dict></plist>`,
		`<plist version="1.0"><dict><key>A</key><string>x</string></dict>`,
	} {
		if _, err := decodePlist(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
