// Package checkcmd implements `vpn-gateway check`: validate a
// configuration file (every mistake, each naming its field) and, unless
// --offline, that the ports and routing tables it names are free here.
package checkcmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/clearpath-vpn/clearpath/cmd/internal/cmdutil"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
	"github.com/clearpath-vpn/clearpath/server/admin"
	"github.com/clearpath-vpn/clearpath/server/config"
	"github.com/clearpath-vpn/clearpath/server/gateway"
)

// Schema names the format of `vpn-gateway check --json` (docs/JSON.md).
var Schema = jsonout.Schema("check", 1)

// Report is what `vpn-gateway check` found: one error per mistake.
type Report struct {
	Config string `json:"config"`
	OK     bool   `json:"ok"`
	// Errors stop the gateway from starting; Notes do not (ports held by
	// the gateway that is running, a probe skipped).
	Errors []string `json:"errors"`
	Notes  []string `json:"notes"`
	// Access describes the networks' access rules, one line each.
	Access []string `json:"access"`
}

// Options are the inputs of `vpn-gateway check`.
type Options struct {
	IO         cmdutil.IOStreams
	ConfigPath string
	JSON       bool
	Offline    bool // the file only: no probe of this host's ports
}

// NewCmd returns `vpn-gateway check`. runF replaces Run in tests.
func NewCmd(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file and that its ports are free, then exit",
		Long: `Validate a configuration file: every mistake is listed, each naming its field
and line. Then, unless --offline, the ports it names are bound for a moment
(API and metrics over TCP, each network's WireGuard port over UDP): a port
another program holds is an error; one the running gateway holds is a note.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.IO, o.ConfigPath = f.IOStreams, f.ConfigPath
			return cmdutil.Run(cmd.Context(), o, runF, Run)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the result as JSON (schema "+Schema+")")
	cmd.Flags().BoolVar(&o.Offline, "offline", false, "check the file only, not this host's ports (e.g. on a build machine)")
	return cmd
}

// Run validates the file and, unless offline, that the ports it
// names are free on this host (or held by the gateway running now) and
// that the networks' routing tables hold no other program's routes.
func Run(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	out := o.IO.Out
	rep := Report{Config: o.ConfigPath, Errors: []string{}, Notes: []string{}, Access: []string{}}
	cfg, err := config.Load(o.ConfigPath)
	if err == nil {
		for i, n := range cfg.Networks {
			rep.Access = append(rep.Access, n.AccessSummary(fmt.Sprintf("networks[%d]", i))...)
		}
	}
	if err != nil {
		rep.Errors = append(rep.Errors, splitErrors(err)...)
	} else if !o.Offline {
		probePorts(ctx, cfg, &rep)
		// A network's table holding routes of another program is refused
		// here as at start (when this host's tables can be read).
		if read, err := gateway.CheckTables(cfg); read && err != nil {
			rep.Errors = append(rep.Errors, strings.Split(err.Error(), "\n")...)
		} else if !read {
			rep.Notes = append(rep.Notes, fmt.Sprintf("routing tables not checked (%v)", err))
		}
	}
	rep.OK = len(rep.Errors) == 0
	if o.JSON {
		if err := jsonout.Write(out, Schema, rep); err != nil {
			return err
		}
		if !rep.OK {
			return cmdutil.Exit(1, nil)
		}
		return nil
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	for _, a := range rep.Access {
		fmt.Fprintf(out, "access: %s\n", a)
	}
	if !rep.OK {
		return fmt.Errorf("%s: %d problem(s):\n  %s", o.ConfigPath, len(rep.Errors), strings.Join(rep.Errors, "\n  "))
	}
	fmt.Fprintf(out, "%s: ok\n", o.ConfigPath)
	return nil
}

// splitErrors lists the mistakes config.Load joined into one error,
// without the "config <path>: " prefix the report already carries.
func splitErrors(err error) []string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var msgs []string
		for _, e := range joined.Unwrap() {
			msgs = append(msgs, splitErrors(e)...)
		}
		return msgs
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "config ") && i > 0 {
		msg = msg[i+2:]
	}
	return strings.Split(msg, "\n")
}

// probePorts binds, for a moment, the API and metrics listeners (TCP) and
// each network's WireGuard port (UDP). A port in use is an error, unless
// the gateway of this configuration is running (its admin socket answers)
// and the port is one it holds already.
func probePorts(ctx context.Context, cfg *config.Config, rep *Report) {
	var running map[string]bool // network names the running gateway serves
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := (&admin.Client{Path: cfg.AdminSocket}).Status(ctx); err == nil {
		running = map[string]bool{}
		for _, n := range st.Networks {
			running[n.Name] = true
		}
	}
	try := func(field, network, addr string, heldByUs bool) {
		var err error
		if network == "tcp" {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		} else {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", addr); err == nil {
				c.Close()
			}
		}
		_, port, _ := net.SplitHostPort(addr)
		switch {
		case err == nil:
		case errors.Is(err, syscall.EADDRINUSE) && heldByUs:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %s/%s is in use by the running gateway", field, network, addr))
		case errors.Is(err, syscall.EADDRINUSE):
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s port %s is in use by another program (`ss -%slnp 'sport = :%s'` names it); stop it or choose another port", field, strings.ToUpper(network), port, network[:1], port))
		case errors.Is(err, syscall.EACCES):
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: port %s is below 1024: run the gateway as root or with CAP_NET_BIND_SERVICE (the packaged unit has it)", field, port))
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %s is not an address of this host (`ip address` lists them)", field, addr))
		default:
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %s not probed (%v)", field, addr, err))
		}
	}
	try("listen", "tcp", cfg.Listen, running != nil)
	if m := cfg.MetricsAddr(); m != "" {
		try("metrics_listen", "tcp", m, running != nil)
	}
	for i, n := range cfg.Networks {
		try(fmt.Sprintf("networks[%d].listen_port", i), "udp", fmt.Sprintf(":%d", n.ListenPort), running[n.Name])
	}
}
