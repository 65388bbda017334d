package api

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidDeviceID reports whether s can name a device: 1-64 letters, digits,
// '-' or '_' (the client makes one, the gateway refuses anything else).
func ValidDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// MaxHostname is the longest host name a registration may carry (a DNS
// name's limit).
const MaxHostname = 253

// CheckHostname refuses a client-chosen host name an administrator's
// terminal could misread: control characters (escape sequences), invalid
// UTF-8, invisible or direction-changing characters, or more than
// MaxHostname bytes. The error names the field.
func CheckHostname(s string) error { return checkPrintable("hostname", s, MaxHostname) }

// CheckOS is CheckHostname for the os field (at most 64 bytes).
func CheckOS(s string) error { return checkPrintable("os", s, 64) }

func checkPrintable(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, at most %d allowed", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	for i, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s: character %U at byte %d is a control or invisible character (%s)", field, r, i, strconv.QuoteToASCII(s))
		}
	}
	return nil
}

// Printable returns s with every character CheckHostname refuses escaped
// (\x1b, \u202e...), for printing values stored before registrations were
// checked, or that came from elsewhere, into a terminal.
func Printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unicode.IsPrint(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
