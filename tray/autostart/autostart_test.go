package autostart

import (
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// parseExec reads an Exec value back as the Desktop Entry spec says a
// launcher does: string escapes first (\s \n \t \r \\), then quoting
// (inside "..." a backslash escapes " ` $ \), then %% is a literal %.
func parseExec(v string) ([]string, error) {
	var s strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			s.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			return nil, errors.New("trailing backslash")
		}
		i++
		switch v[i] {
		case 's':
			s.WriteByte(' ')
		case 'n':
			s.WriteByte('\n')
		case 't':
			s.WriteByte('\t')
		case 'r':
			s.WriteByte('\r')
		case '\\':
			s.WriteByte('\\')
		default:
			return nil, errors.New("unknown string escape")
		}
	}
	var args []string
	var cur strings.Builder
	in, quoted, have := []rune(s.String()), false, false
	for i := 0; i < len(in); i++ {
		r := in[i]
		switch {
		case quoted && r == '\\':
			if i+1 == len(in) || !strings.ContainsRune("\"`$\\", in[i+1]) {
				return nil, errors.New("bad escape inside quotes")
			}
			i++
			cur.WriteRune(in[i])
		case quoted && r == '"':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '"':
			quoted, have = true, true
		case r == ' ':
			if have || cur.Len() > 0 {
				args = append(args, cur.String())
			}
			cur.Reset()
			have = false
		case strings.ContainsRune("\t\"'\\><~|&;$*?#()`", r):
			return nil, errors.New("reserved character outside quotes")
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if have || cur.Len() > 0 {
		args = append(args, cur.String())
	}
	for i, a := range args {
		if strings.Contains(strings.ReplaceAll(a, "%%", ""), "%") {
			return nil, errors.New("field code in argument")
		}
		args[i] = strings.ReplaceAll(a, "%%", "%")
	}
	return args, nil
}

func execLine(t testing.TB, entry string) string {
	t.Helper()
	for _, l := range strings.Split(entry, "\n") {
		if v, ok := strings.CutPrefix(l, "Exec="); ok {
			return v
		}
	}
	t.Fatalf("no Exec line in\n%s", entry)
	return ""
}

func TestDesktopEntryQuotesArguments(t *testing.T) {
	argv := []string{"/opt/Clear Path/vpn-tray", "--server=https://vpn.example.com", "--token-file=/home/a/it's \"mine\" $HOME `x` \\ 100%"}
	entry, err := DesktopEntry(argv)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(entry, "[Desktop Entry]\nType=Application\n") || !strings.Contains(entry, "\nX-GNOME-Autostart-enabled=true\n") {
		t.Fatalf("entry:\n%s", entry)
	}
	got, err := parseExec(execLine(t, entry))
	if err != nil || !reflect.DeepEqual(got, argv) {
		t.Fatalf("Exec=%s\nreads back as %q (%v), want %q", execLine(t, entry), got, err, argv)
	}
	if strings.Contains(execLine(t, entry), "--server=https://vpn.example.com\"") {
		t.Fatal("a plain argument was quoted")
	}
	for _, bad := range [][]string{nil, {"vpn-tray"}, {"/bin/vpn-tray", "a\nb"}} {
		if _, err := DesktopEntry(bad); err == nil {
			t.Errorf("DesktopEntry(%q) accepted", bad)
		}
	}
}

// FuzzDesktopEntry: every UTF-8 argument without control characters
// survives the entry's quoting exactly; any other is refused.
func FuzzDesktopEntry(f *testing.F) {
	for _, s := range []string{"", "plain", "two words", `"q"`, "$x `y` \\z", "100%", "%f", "tab\there", "~/x", "ü ñ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		argv := []string{"/usr/bin/vpn-tray", arg}
		entry, err := DesktopEntry(argv)
		if !utf8.ValidString(arg) || strings.IndexFunc(arg, unicode.IsControl) >= 0 {
			if err == nil {
				t.Fatalf("not UTF-8 or a control character, accepted: %q", arg)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseExec(execLine(t, entry))
		if err != nil || !reflect.DeepEqual(got, argv) {
			t.Fatalf("%q reads back as %q (%v)", arg, got, err)
		}
	})
}

func TestInstallAndRemoveXDG(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config", "autostart")
	p, err := InstallXDG(dir, []string{"/usr/bin/vpn-tray", "--server=https://gw"})
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "clearpath-tray.desktop") {
		t.Fatalf("path %s", p)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("entry %v %v", fi, err)
	}
	b, _ := os.ReadFile(p)
	if got, _ := parseExec(execLine(t, string(b))); !reflect.DeepEqual(got, []string{"/usr/bin/vpn-tray", "--server=https://gw"}) {
		t.Fatalf("installed Exec %q", got)
	}
	// Installing again replaces it; no temporary files stay behind.
	if _, err := InstallXDG(dir, []string{"/usr/local/bin/vpn-tray"}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("autostart dir holds %v", ents)
	}
	if err := RemoveXDG(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("entry still there: %v", err)
	}
	if err := RemoveXDG(dir); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
}

func TestXDGDir(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/x/config")
	if d, _ := XDGDir(); d != "/x/config/autostart" {
		t.Fatalf("with XDG_CONFIG_HOME: %s", d)
	}
	t.Setenv("XDG_CONFIG_HOME", "relative") // the spec says: ignore
	t.Setenv("HOME", "/home/alice")
	if d, _ := XDGDir(); d != "/home/alice/.config/autostart" {
		t.Fatalf("without: %s", d)
	}
}

// The launch agent is a well-formed plist whose ProgramArguments are the
// arguments exactly, XML special characters included.
func TestLaunchdPlist(t *testing.T) {
	argv := []string{"/Applications/ClearPath.app/Contents/MacOS/vpn-tray", "--server=https://vpn.example.com/?a=1&b=<2>", `--network="ops"`}
	s, err := LaunchdPlist(argv)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Dict struct {
			Items []struct {
				XMLName xml.Name
				Text    string   `xml:",chardata"`
				Strings []string `xml:"string"`
			} `xml:",any"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(s), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, s)
	}
	got := map[string]any{}
	var key string
	for _, it := range doc.Dict.Items {
		switch it.XMLName.Local {
		case "key":
			key = it.Text
		case "array":
			got[key] = it.Strings
		default:
			got[key] = it.XMLName.Local + ":" + strings.TrimSpace(it.Text)
		}
	}
	if got["Label"] != "string:dev.clearpath.tray" || got["RunAtLoad"] != "true:" || !reflect.DeepEqual(got["ProgramArguments"], argv) {
		t.Fatalf("plist reads as %v\n%s", got, s)
	}
	if _, err := LaunchdPlist([]string{"vpn-tray"}); err == nil {
		t.Fatal("a relative program was accepted")
	}
}
