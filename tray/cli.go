package tray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/statedir"
	"github.com/clearpath-vpn/clearpath/routes/analysis"
)

// Doctor diagnoses and repairs the machine's routing.
type Doctor interface {
	Check(ctx context.Context) (analysis.Report, error)
	// Fix repairs the finding id (and ClearPath's own leftovers) and
	// returns the report after the repair.
	Fix(ctx context.Context, id string) (analysis.Report, error)
}

// CLI runs the `vpn` binary for what the CLI already does well: doctor
// (one implementation of the checks, so tray and terminal agree) and
// starting the agent.
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

// StartAgent starts `vpn agent` detached (its own session, output to
// agent.log in the state dir) in this process's network namespace and
// waits until it answers on its socket. The agent needs root.
//
// An agent that just answered a down may still hold the state dir's lock
// for a moment, and a new one exits at once then: it is started again, up
// to 5 times 100 ms apart.
func (c CLI) StartAgent(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("no agent is running and starting one needs root: start the clearpath service, or run `sudo vpn up` once")
	}
	for attempt := 1; ; attempt++ {
		exited, err := c.startAgent(ctx)
		if err == nil || !exited || attempt == 5 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c CLI) startAgent(ctx context.Context) (exitedAtStart bool, err error) {
	dir := c.StateDir
	if err := statedir.Ensure(dir); err != nil {
		return false, err
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := statedir.OpenFile(dir, "agent.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	argv := c.args("agent")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the tray
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	cl := control.NewClient(control.SocketFor(dir))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return true, fmt.Errorf("agent exited at start (%v); see %s", err, logPath)
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := cl.Status(ctx); err == nil {
			return false, nil
		}
	}
	return false, fmt.Errorf("agent did not answer within 5s; see %s", logPath)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
