package gwapi

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clearpath-vpn/clearpath/server/api"
)

// MaxText is the most runes of one piece of gateway text the client shows.
const MaxText = 256

// Clean makes text from the gateway safe to print on a terminal or in a
// desktop notification: control characters (escape sequences, carriage
// returns, newlines) and bidirectional overrides are dropped, invalid UTF-8
// becomes U+FFFD, and the result is cut to MaxText runes ("…" marks a cut).
func Clean(s string) string {
	var b strings.Builder
	n := 0
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				r = '\uFFFD'
			}
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			continue
		}
		if n == MaxText {
			b.WriteRune('…')
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// cleanConfig cleans the fields of a peer config that are shown to people.
// Addresses, keys and prefixes are parsed and checked instead (Validate).
func cleanConfig(pc *api.PeerConfig) {
	pc.PeerID, pc.DeviceID, pc.Network = Clean(pc.PeerID), Clean(pc.DeviceID), Clean(pc.Network)
	pc.User, pc.Email = Clean(pc.User), Clean(pc.Email)
}

func cleanError(e *api.Error) {
	e.Error, e.Message = Clean(e.Error), Clean(e.Message)
	for i, n := range e.Networks {
		e.Networks[i] = Clean(n)
	}
	if len(e.Networks) > 64 {
		e.Networks = append(e.Networks[:64], "…")
	}
}
