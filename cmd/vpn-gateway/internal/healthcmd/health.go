// Package healthcmd implements `vpn-gateway health`: GET /healthz of a
// running gateway, exit 0 when it answers 200, 1 otherwise. A container
// image FROM scratch has no curl: its HEALTHCHECK runs this.
package healthcmd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/server/config"
)

// Options are the inputs of `vpn-gateway health`.
type Options struct {
	IO      cmdutil.IOStreams
	URL     string
	Timeout time.Duration
}

// NewCmd returns `vpn-gateway health`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask a running gateway's /healthz; exit 0 when healthy (container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO = f.IOStreams
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	// The default is the loopback metrics listener, plain http whether or
	// not the API itself serves TLS.
	cmd.Flags().StringVar(&o.URL, "url", "http://"+config.DefaultMetricsListen+"/healthz", "the gateway's /healthz (on metrics_listen, or https://HOST:PORT/healthz on listen)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Second, "give up after this long")
	return cmd
}

// Run asks /healthz and prints its answer; exit status 1 when it is not 200.
func Run(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration", o.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return fmt.Errorf("--url %q: %w", o.URL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("gateway health at %s: %w", o.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintln(o.IO.Out, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return cmdutil.Exit(1, fmt.Errorf("gateway at %s is unhealthy: %s", o.URL, resp.Status))
	}
	return nil
}
