package api

import (
	"fmt"
	"strings"
)

// Bounds on the DNS settings a gateway pushes (PeerConfig.DNS and
// PeerConfig.DNSDomains); the gateway's configuration and the client check
// them alike.
const (
	MaxDNSServers = 8
	MaxDNSDomains = 64
)

// CanonicalDomain checks that s is a DNS name usable as a routing domain
// ("corp.internal", "db.example.com."), and returns it lower-cased without
// the final dot. The root (".", ""), wildcards and labels that are not
// letters, digits, '-' or '_' are refused: a routing domain names a zone
// whose queries go to the tunnel's servers.
func CanonicalDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if d == "" {
		return "", fmt.Errorf("%q is the root zone: leave domains empty (with --all-traffic on the client) to send all DNS through the tunnel", s)
	}
	if len(d) > 253 {
		return "", fmt.Errorf("%q is longer than 253 bytes", s)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" {
			return "", fmt.Errorf("%q has an empty label", s)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%q has a label longer than 63 bytes", s)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%q: label %q starts or ends with '-'", s, l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q: label %q holds %q (letters, digits, '-' and '_' only)", s, l, c)
			}
		}
	}
	return d, nil
}
