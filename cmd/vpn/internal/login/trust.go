package login

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/client/auth"
	"github.com/clearpath-vpn/clearpath/client/trust"
)

// TrustFlags are --allow-http and --ca-file (on login and up).
type TrustFlags struct {
	AllowHTTP    bool
	allowHTTPSet bool
	CAFile       string
}

func addTrustFlags(cmd *cobra.Command, t *TrustFlags) {
	cmd.Flags().BoolVar(&t.AllowHTTP, "allow-http", false, "allow a plain http:// server that is not on this machine (your token travels unencrypted; remembered for the server, --allow-http=false forgets it)")
	cmd.Flags().StringVar(&t.CAFile, "ca-file", "", "also trust the CA certificate(s) in this PEM file for the gateway and its identity provider (remembered for the server)")
}

// Seen records which trust flags were given on cmd's command line; call it
// at the start of RunE.
func (t *TrustFlags) Seen(cmd *cobra.Command) {
	t.allowHTTPSet = cmd.Flags().Changed("allow-http")
}

// Trust is how to reach one server: the policy and the HTTP client for it.
type Trust struct {
	Policy trust.Policy
	HTTP   *http.Client
}

// ResolveTrust merges the flags with what is remembered for server,
// refuses plain http to a host that is not this machine unless allowed
// (printing a warning to errOut each time it is used), reads the CA file as
// the user and remembers the choices for the next commands.
func ResolveTrust(cache *auth.Cache, server string, t TrustFlags, errOut io.Writer) (*Trust, error) {
	s, err := cache.LoadSettings(server)
	if err != nil {
		return nil, err
	}
	saved := s
	if t.allowHTTPSet {
		s.AllowHTTP = t.AllowHTTP
		if !t.AllowHTTP && saved.AllowHTTP {
			// Forgetting takes effect even though this command is
			// then refused.
			saved.AllowHTTP = false
			if err := cache.SaveSettings(saved); err != nil {
				return nil, err
			}
		}
	}
	fromFlag := t.CAFile != ""
	if fromFlag {
		if s.CAFile, err = filepath.Abs(t.CAFile); err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
	}
	pol := trust.Policy{AllowHTTP: s.AllowHTTP, CAFile: s.CAFile}
	if s.CAFile != "" {
		if pol.CAPEM, err = os.ReadFile(s.CAFile); err != nil {
			if fromFlag {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			return nil, fmt.Errorf("the CA file remembered for %s cannot be read (%w): pass --ca-file FILE again", server, err)
		}
	}
	warning, err := trust.Check(server, pol)
	if err != nil {
		return nil, err
	}
	hc, err := trust.HTTPClient(pol, 20*time.Second)
	if err != nil {
		if fromFlag {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		return nil, err
	}
	if warning != "" {
		fmt.Fprintln(errOut, warning)
	}
	if s != saved {
		if err := cache.SaveSettings(s); err != nil {
			return nil, err
		}
	}
	return &Trust{Policy: pol, HTTP: hc}, nil
}
