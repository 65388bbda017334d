package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The one token-file reader: a token with white space around it is read;
// an empty file, two tokens, a missing file and a file far larger than a
// token are refused with errors that name the file and what is wrong.
func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "  eyJ.a.b\r\n")); err != nil || tok != "eyJ.a.b" {
		t.Fatalf("good file: %q, %v", tok, err)
	}
	if tok, err := ReadTokenFile(write("max", strings.Repeat("x", MaxToken)+"\n")); err != nil || len(tok) != MaxToken {
		t.Fatalf("a token of MaxToken bytes: %d, %v", len(tok), err)
	}
	empty := write("empty", " \n\t\n")
	if _, err := ReadTokenFile(empty); !errors.Is(err, ErrEmptyTokenFile) || err.Error() != "token file "+empty+" is empty" {
		t.Errorf("empty file: %v", err)
	}
	for name, c := range map[string]struct{ path, want string }{
		"two tokens": {write("two", "a.b.c d.e.f\n"), "holds more than one token or stray text"},
		"missing":    {filepath.Join(dir, "none"), "no such file"},
		"no path":    {"", "no path given"},
		"too long":   {write("long", strings.Repeat("x", MaxToken+1)), "longer than 64 KiB"},
	} {
		if _, err := ReadTokenFile(c.path); err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrEmptyTokenFile) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

// The attack: a token file that never ends (the agent re-reads
// UpRequest.TokenFile as root). The reader stops after a token's worth of
// bytes and refuses it, instead of reading without bound.
func TestReadTokenFileReadsNoMoreThanAToken(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, err := ReadTokenFile("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "longer than 64 KiB") {
		t.Fatalf("/dev/zero as a token file: %v", err)
	}
}
