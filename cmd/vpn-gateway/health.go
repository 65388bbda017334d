package main

import (
	"context"
	"fmt"
	"github.com/clearpath-vpn/clearpath/server/config"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/vpn-gateway/internal/cmdutil"
)

// newHealth is `vpn-gateway health`: GET /healthz of a running gateway,
// exit 0 when it answers 200, 1 otherwise. A container image FROM scratch
// has no curl: its HEALTHCHECK runs this.
func newHealth(out io.Writer) *cobra.Command {
	var url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask a running gateway's /healthz; exit 0 when healthy (container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("--url %q: %w", url, err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("gateway health at %s: %w", url, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			fmt.Fprintln(out, strings.TrimSpace(string(body)))
			if resp.StatusCode != http.StatusOK {
				fmt.Fprintf(cmd.ErrOrStderr(), "vpn-gateway: gateway at %s is unhealthy: %s\n", url, resp.Status)
				return cmdutil.ExitError{Code: 1}
			}
			return nil
		},
	}
	// The default is the loopback metrics listener, plain http whether or
	// not the API itself serves TLS.
	cmd.Flags().StringVar(&url, "url", "http://"+config.DefaultMetricsListen+"/healthz", "the gateway's /healthz (on metrics_listen, or https://HOST:PORT/healthz on listen)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}
