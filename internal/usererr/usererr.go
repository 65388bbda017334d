// Package usererr turns the errors people meet most (a server that cannot
// be reached, a name that does not resolve, a certificate that is not
// trusted) into one line saying what failed and what to check. The whole
// chain of wrapped errors stays available: the commands print it with
// --debug (or CLEARPATH_DEBUG=1).
package usererr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/clearpath-vpn/clearpath/internal/envvar"
)

// Line returns the one-line explanation of err, and false when err is of
// no kind it knows (then err.Error() is the message). What the wrappers
// said of the outcome ("; nothing is left set up") is kept at the end.
func Line(err error) (string, bool) {
	line, ok := line(err)
	if ok {
		line += outcome(err)
	}
	return line, ok
}

// outcome is the text wrappers added after the error they wrap, when it
// reads as a consequence ("…: %w; the reload was rolled back").
func outcome(err error) string {
	var tails []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		in := errors.Unwrap(e)
		if in == nil {
			break
		}
		msg, inner := e.Error(), in.Error()
		if i := strings.LastIndex(msg, inner); i >= 0 {
			if tail := msg[i+len(inner):]; strings.HasPrefix(tail, "; ") {
				tails = append(tails, tail)
			}
		}
	}
	return strings.Join(tails, "")
}

func line(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	where := target(err)
	var (
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		dns *net.DNSError
		rh  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ua):
		return fmt.Sprintf("the certificate of %s is signed by an unknown authority (certificate signed by unknown authority): "+
			"if your organisation runs its own CA, pass its certificate with --ca-file FILE (PEM) or install it in the system's store", where), true
	case errors.As(err, &he):
		var names []string
		if he.Certificate != nil {
			names = append(names, he.Certificate.DNSNames...)
			for _, ip := range he.Certificate.IPAddresses {
				names = append(names, ip.String())
			}
		}
		return fmt.Sprintf("the certificate of %s is made for %s, not for %s: use the URL the certificate names", where, orNone(names), he.Host), true
	case errors.As(err, &ci):
		why := "not valid"
		switch ci.Reason {
		case x509.Expired:
			why = "expired or not yet valid (" + ci.Detail + "); check this machine's clock, or tell the gateway's operator"
		default:
			why = "not valid (" + ci.Error() + "); tell the gateway's operator"
		}
		return fmt.Sprintf("the certificate of %s is %s", where, why), true
	case errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Sprintf("%s does not speak TLS (HTTPS) on that port: check the URL's port; a gateway without a tls block serves http:// (then --allow-http)", where), true
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return fmt.Sprintf("cannot resolve %s (no such host): check the server URL's spelling, or this machine's DNS", dns.Name), true
		}
		return fmt.Sprintf("cannot resolve %s (%s): check this machine's network and DNS", dns.Name, dns.Err), true
	case errors.Is(err, syscall.EADDRINUSE) || portInUseRE.MatchString(err.Error()):
		return fmt.Sprintf("%s: a port it needs is in use by another program (errno=-98, EADDRINUSE): `vpn-gateway check` names the setting, `ss -lnp` the program", head(err)), true
	case strings.Contains(err.Error(), "/proc/sys/") && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)):
		var pe *fs.PathError
		path := "/proc/sys"
		if errors.As(err, &pe) {
			path = pe.Path
		}
		return fmt.Sprintf("cannot write %s: the gateway runs as root (the clearpath-gateway service does); "+
			"in a container /proc/sys is read-only, so set net.ipv4.ip_forward=1 and net.ipv6.conf.all.forwarding=1 from outside (--sysctl)", path), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing answers at %s (connection refused): check the URL and port, and that the gateway runs", where), true
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%s is unreachable from here (no route): check this machine's network connection", where), true
	case isTimeout(err):
		return fmt.Sprintf("%s did not answer in time: check this machine's network connection, a firewall, or that the gateway runs", where), true
	}
	return "", false
}

// Message is Line(err) when known, else err.Error().
func Message(err error) string {
	if l, ok := Line(err); ok {
		return l
	}
	return err.Error()
}

// Debug reports whether the full chain should be shown: CLEARPATH_DEBUG
// (or the old VPN_DEBUG) set to 1/true, as the --debug flags also set it.
func Debug() bool {
	v := envvar.Get("DEBUG")
	return v == "1" || strings.EqualFold(v, "true")
}

// Print writes err for a person: the one line, and with debug the whole
// chain (each wrapped error on its own line).
func Print(w io.Writer, prog string, err error, debug bool) {
	msg := err.Error()
	if msg == "" {
		return
	}
	line, known := Line(err)
	if !known {
		line = msg
	}
	fmt.Fprintf(w, "%s: %s\n", prog, line)
	if debug {
		fmt.Fprintf(w, "%s: debug: error chain:\n", prog)
		for e := err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(w, "  %T: %s\n", e, e)
		}
	}
}

// portInUseRE is wireguard-go's answer when its UDP port is taken, as
// wgctrl reports it ("wguser: errno=-98").
var portInUseRE = regexp.MustCompile(`errno=-98\b`)

// head is the outermost context of err's message (up to the first ": ").
func head(err error) string {
	h, _, _ := strings.Cut(err.Error(), ": ")
	return h
}

// target names what was being reached: the URL's host of a failed HTTP
// request, else the address of a failed dial.
func target(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil {
		return oe.Addr.String()
	}
	return "the server"
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}
