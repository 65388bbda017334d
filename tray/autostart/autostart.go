// Package autostart makes the tray start with the desktop session: an XDG
// autostart entry on Linux desktops, a launchd agent on macOS.
package autostart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// Name is the file name stem of the autostart entries.
const Name = "clearpath-tray"

// Label is the launchd label of the macOS agent.
const Label = "dev.clearpath.tray"

// XDGDir is the autostart directory of the XDG spec: $XDG_CONFIG_HOME/autostart,
// else ~/.config/autostart.
func XDGDir() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "autostart"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("autostart: no home directory: %w", err)
	}
	return filepath.Join(home, ".config", "autostart"), nil
}

// DesktopEntry is the XDG autostart entry running argv.
func DesktopEntry(argv []string) (string, error) {
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return "", errors.New("autostart: the program must be an absolute path")
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		q, err := quoteExec(a)
		if err != nil {
			return "", err
		}
		quoted[i] = q
	}
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Name=ClearPath VPN\n" +
		"Comment=Connect to ClearPath and see the tunnel's state\n" +
		"Exec=" + strings.Join(quoted, " ") + "\n" +
		"Icon=network-vpn\n" +
		"Terminal=false\n" +
		"Categories=Network;\n" +
		"X-GNOME-Autostart-enabled=true\n", nil
}

// quoteExec quotes one argument of an Exec key as the Desktop Entry spec
// wants: reserved characters inside double quotes, with `"`, "`", "$" and
// "\" escaped; "%" doubled since it starts field codes.
func quoteExec(s string) (string, error) {
	// Desktop entries are UTF-8 text without control characters.
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("autostart: argument %q is not valid UTF-8", s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return "", fmt.Errorf("autostart: argument %q has a control character (%q)", s, s[i])
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\><~|&;$*?#()`") {
		return s, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if strings.ContainsRune("\"`$\\", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	// The Desktop Entry value itself is an escaped string: backslashes double.
	return strings.ReplaceAll(b.String(), `\`, `\\`), nil
}

// InstallXDG writes the autostart entry into dir and returns its path.
func InstallXDG(dir string, argv []string) (string, error) {
	entry, err := DesktopEntry(argv)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("autostart: %w", err)
	}
	p := filepath.Join(dir, Name+".desktop")
	if err := writeAtomic(p, []byte(entry)); err != nil {
		return "", err
	}
	return p, nil
}

// RemoveXDG deletes the autostart entry; a missing one is fine.
func RemoveXDG(dir string) error {
	err := os.Remove(filepath.Join(dir, Name+".desktop"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}

var plist = template.Must(template.New("plist").Parse(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{.Label}}</string>
	<key>ProgramArguments</key>
	<array>
{{- range .Args}}
		<string>{{.}}</string>
{{- end}}
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<false/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
`))

// LaunchdPlist is the macOS launch agent running argv at login. Install it
// as ~/Library/LaunchAgents/dev.clearpath.tray.plist and load it with
// `launchctl bootstrap gui/$(id -u) <file>`.
func LaunchdPlist(argv []string) (string, error) {
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return "", errors.New("autostart: the program must be an absolute path")
	}
	var b bytes.Buffer
	// html/template would be wrong here; text/template plus XML escaping
	// of each argument keeps the plist valid for any path.
	esc := make([]string, len(argv))
	for i, a := range argv {
		esc[i] = xmlEscape(a)
	}
	if err := plist.Execute(&b, map[string]any{"Label": Label, "Args": esc}); err != nil {
		return "", err
	}
	return b.String(), nil
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}

func writeAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".autostart-*")
	if err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("autostart: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("autostart: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("autostart: %w", err)
	}
	return nil
}
