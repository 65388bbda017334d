package tray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Doctor diagnoses and repairs the machine's routing.
type Doctor interface {
	Check(ctx context.Context) (analysis.Report, error)
	// Fix repairs the finding id (and ClearPath's own leftovers) and
	// returns the report after the repair.
	Fix(ctx context.Context, id string) (analysis.Report, error)
}

// CLI runs the `vpn` binary for what the CLI already does well: doctor
// (one implementation of the checks, so tray and terminal agree). The
// agent is started by local.Client.Start (with Path as its VPN).
type CLI struct {
	// Path of the vpn binary.
	Path     string
	StateDir string
	// Elevate prefixes commands that change the system when the tray does
	// not run as root, e.g. ["pkexec"]. Empty when running as root.
	Elevate []string
}

// FindVPN locates the vpn binary: next to this program first (installed
// together), then on PATH.
func FindVPN() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vpn")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("vpn")
	if err != nil {
		return "", errors.New("the vpn binary is neither next to vpn-tray nor on PATH: install it or pass --vpn")
	}
	return p, nil
}

func (c CLI) args(args ...string) []string {
	out := []string{c.Path}
	if c.StateDir != "" {
		out = append(out, "--state-dir", c.StateDir)
	}
	return append(out, args...)
}

// Check implements Doctor with `vpn doctor --json`. Exit status 1 means
// "problems found" and still carries the report.
func (c CLI) Check(ctx context.Context) (analysis.Report, error) {
	var rep analysis.Report
	argv := c.args("doctor", "--json")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return rep, fmt.Errorf("vpn doctor: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return rep, fmt.Errorf("vpn doctor --json: unreadable report: %w", err)
	}
	return rep, nil
}

// Fix implements Doctor with `vpn doctor --fix=ID` (elevated when needed),
// then checks again: a finding that is still there means the fix failed.
func (c CLI) Fix(ctx context.Context, id string) (analysis.Report, error) {
	if id == "" || strings.ContainsAny(id, ", =") || strings.HasPrefix(id, "-") {
		return analysis.Report{}, fmt.Errorf("fix: bad finding id %q", id)
	}
	// "--fix=ID": a bare --fix means "our leftovers", so "--fix ID" would
	// read ID as an argument.
	argv := append(append([]string{}, c.Elevate...), c.args("doctor", "--fix="+id)...)
	out, ferr := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	rep, err := c.Check(ctx)
	if err != nil {
		return rep, err
	}
	for _, f := range rep.Findings {
		if f.ID == id {
			why := lastLines(string(out), 3)
			if ferr != nil {
				why = ferr.Error() + ": " + why
			}
			return rep, fmt.Errorf("vpn doctor --fix=%s did not repair it: %s", id, why)
		}
	}
	return rep, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
