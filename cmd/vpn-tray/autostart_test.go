package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func vpnTray(t *testing.T, args ...string) string {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("vpn-tray %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// `vpn-tray --server URL autostart enable` installs an entry that starts
// this binary with the flags given before "autostart"; disable removes it.
func TestAutostartCommand(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ = filepath.EvalSymlinks(exe)

	show := vpnTray(t, "--server", "https://vpn.example.com", "--network", "ops", "autostart", "show", "--launchd=false")
	if want := "Exec=" + exe + " --network=ops --server=https://vpn.example.com\n"; !strings.Contains(show, want) {
		t.Fatalf("entry lacks %q:\n%s", want, show)
	}
	out := vpnTray(t, "--server", "https://vpn.example.com", "autostart", "enable", "--launchd=false")
	entry := filepath.Join(cfg, "autostart", "clearpath-tray.desktop")
	b, err := os.ReadFile(entry)
	if err != nil || !strings.Contains(out, entry) || !strings.Contains(string(b), "Exec="+exe+" --server=https://vpn.example.com\n") {
		t.Fatalf("enable said %q; entry %q (%v)", out, b, err)
	}
	vpnTray(t, "autostart", "disable")
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Fatalf("entry still there after disable: %v", err)
	}

	plist := vpnTray(t, "--server", "https://vpn.example.com", "autostart", "show", "--launchd")
	if !strings.Contains(plist, "<string>"+exe+"</string>") || !strings.Contains(plist, "<string>--server=https://vpn.example.com</string>") {
		t.Fatalf("launch agent:\n%s", plist)
	}
}
