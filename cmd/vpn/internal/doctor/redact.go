package doctor

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// redactor takes out of a support bundle what identifies the user or
// could be abused: user names, e-mail addresses and the host name, bearer
// and refresh tokens (JWTs and anything labelled a token), WireGuard and
// PEM keys, and public IP addresses. Private, shared (100.64.0.0/10),
// loopback and link-local addresses stay: they are what a routing problem
// is made of. A public address becomes a stable stand-in from a reserved
// range (240.0.0.N, 100::N), the same one wherever it occurs, so the
// bundle still reads (and its snapshot still loads in `vpn doctor
// --snapshot`) without saying where the user or the gateway is.
type redactor struct {
	words  []string // exact strings to replace with "[user]"
	public map[netip.Addr]netip.Addr
	v4, v6 int
}

var (
	jwtRE     = lazyRE(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)
	bearerRE  = lazyRE(`(?i)(bearer\s+)[^\s"',]+`)
	tokenKVRE = lazyRE(`(?i)("?[a-z_]*(?:token|secret|password|private_key|preshared_key|psk)"?\s*[:=]\s*"?)([^\s"',}]+)`)
	pemRE     = lazyRE(`(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----`)
	// A key may start with '+' or '/', where \b finds no boundary, so the
	// character before it is matched (and put back) instead.
	wgKeyRE  = lazyRE(`(^|[^A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=`)
	hexKeyRE = lazyRE(`\b[0-9a-fA-F]{64}\b`)
	emailRE  = lazyRE(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)
	homeRE   = lazyRE(`(/home/|/Users/)[^/\s"']+`)
	ipv4RE   = lazyRE(`\b\d{1,3}(?:\.\d{1,3}){3}\b`)
	ipv6RE   = lazyRE(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}`)

	standIn4 = netip.MustParsePrefix("240.0.0.0/8")
	standIn6 = netip.MustParsePrefix("100::/64")
	shared4  = netip.MustParsePrefix("100.64.0.0/10")
)

// lazyRegexp compiles its expression on first use: only `vpn doctor`
// redacts, and compiling them all at package init cost every vpn start
// (vpn up, the agent) some 0.5 ms.
type lazyRegexp func() *regexp.Regexp

func lazyRE(expr string) lazyRegexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

func (l lazyRegexp) ReplaceAllString(s, repl string) string { return l().ReplaceAllString(s, repl) }

func (l lazyRegexp) ReplaceAllStringFunc(s string, f func(string) string) string {
	return l().ReplaceAllStringFunc(s, f)
}

func newRedactor(words ...string) *redactor {
	r := &redactor{public: map[netip.Addr]netip.Addr{}}
	for _, w := range words {
		if w = strings.TrimSpace(w); len(w) >= 3 && w != "root" && !slices.Contains(r.words, w) {
			r.words = append(r.words, w)
		}
	}
	// Longer first, so "alice.smith" goes before "alice".
	sort.Slice(r.words, func(i, j int) bool { return len(r.words[i]) > len(r.words[j]) })
	return r
}

func (r *redactor) String(s string) string {
	s = pemRE.ReplaceAllString(s, "[private key]")
	s = jwtRE.ReplaceAllString(s, "[token]")
	s = bearerRE.ReplaceAllString(s, "${1}[token]")
	s = tokenKVRE.ReplaceAllString(s, "${1}[redacted]")
	s = wgKeyRE.ReplaceAllString(s, "${1}[key]")
	s = hexKeyRE.ReplaceAllString(s, "[key]")
	s = emailRE.ReplaceAllString(s, "[email]")
	s = homeRE.ReplaceAllString(s, "${1}[user]")
	for _, w := range r.words {
		s = replaceFold(s, w, "[user]")
	}
	s = ipv4RE.ReplaceAllStringFunc(s, r.addr)
	s = ipv6RE.ReplaceAllStringFunc(s, r.addr)
	return s
}

// replaceFold replaces every case-insensitive occurrence of old.
func replaceFold(s, old, repl string) string {
	lo, lold := strings.ToLower(s), strings.ToLower(old)
	if len(lo) != len(s) || !strings.Contains(lo, lold) {
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(lo, lold)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lo = s[i+len(old):], lo[i+len(old):]
	}
}

// addr swaps a public address for its stand-in; anything else is kept.
func (r *redactor) addr(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil || !public(a) {
		return s
	}
	a = a.Unmap()
	if st, ok := r.public[a]; ok {
		return st.String()
	}
	var st netip.Addr
	if a.Is4() {
		r.v4++
		st = netip.AddrFrom4([4]byte{240, 0, byte(r.v4 >> 8), byte(r.v4)})
	} else {
		r.v6++
		b := standIn6.Addr().As16()
		b[14], b[15] = byte(r.v6>>8), byte(r.v6)
		st = netip.AddrFrom16(b)
	}
	r.public[a] = st
	return st.String()
}

// public: an address on the internet (documentation ranges count, as
// they stand for such addresses in examples and the lab).
func public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || shared4.Contains(a) || standIn4.Contains(a) || standIn6.Contains(a) {
		return false
	}
	return !a.Is4() || a.As4()[0] != 0
}

func (r *redactor) Bytes(b []byte) []byte { return []byte(r.String(string(b))) }

func (r *redactor) summary() string {
	return fmt.Sprintf("redacted: user names, e-mail addresses, host name, tokens, keys; %d public IPv4 and %d public IPv6 addresses replaced by stand-ins (240.0.0.N, 100::N)", r.v4, r.v6)
}
