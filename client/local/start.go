package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/clearpath-vpn/clearpath/client/control"
	"github.com/clearpath-vpn/clearpath/client/statedir"
)

// ErrStartNeedsRoot: no agent runs and this process may not start one.
// It is also control.ErrNoAgent (errors.Is).
var ErrStartNeedsRoot error = needRoot{}

type needRoot struct{}

func (needRoot) Error() string {
	return "no agent is running, and starting one needs root: start the service " +
		"(sudo systemctl start clearpath-agent; macOS: sudo launchctl kickstart system/dev.clearpath.agent), or run `sudo vpn up` once"
}

func (needRoot) Unwrap() error { return control.ErrNoAgent }

// StartAttempts bounds how often Start starts an agent that exits at once.
const StartAttempts = 5

// Ensure makes sure an agent answers: the running one, else one started
// (Start). An agent that runs but refuses this user is control.ErrNoAccess,
// never started over.
func (c *Client) Ensure(ctx context.Context) error {
	_, err := c.Status(ctx)
	if !errors.Is(err, control.ErrNoAgent) {
		return err
	}
	return c.Start(ctx)
}

// Start starts `vpn agent` detached (its own session, so it outlives the
// CLI, the tray and their terminal; output appended to agent.log in the
// state dir) in this process's network namespace, and waits until it
// answers (Started). It needs root: ErrStartNeedsRoot otherwise.
//
// An agent that has just answered a down may still hold the state dir's
// lock for a moment, and one started then exits at once; so may the
// loser of two starts at the same time (the CLI and the tray). Start
// then asks again, and starts another when still nothing answers, up to
// StartAttempts times.
func (c *Client) Start(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return ErrStartNeedsRoot
	}
	wait := Started.First * 5 // 25 ms, then 50, 100, 200: the old agent's exit
	for attempt := 1; ; attempt++ {
		exited, err := c.startOnce(ctx)
		if err == nil || !exited || attempt == StartAttempts {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
		if _, err := c.Client.Status(ctx); err == nil {
			return nil // the winner of a race answers
		}
	}
}

// startOnce starts one agent and waits for it; exited says it exited
// before answering.
func (c *Client) startOnce(ctx context.Context) (exited bool, err error) {
	if err := statedir.Ensure(c.StateDir); err != nil {
		return false, err
	}
	exe := c.VPN
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return false, fmt.Errorf("start agent: %w", err)
		}
	}
	logPath := filepath.Join(c.StateDir, "agent.log")
	logf, err := statedir.OpenFile(c.StateDir, "agent.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("agent log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, "agent", "--state-dir", c.StateDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start agent %s: %w", exe, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Only the agent started here counts while it runs: one that answered
	// a down a moment ago may still answer, and is about to go.
	var exitErr error
	answered := Started.Poll(ctx, func() bool {
		select {
		case exitErr = <-done:
			exited = true
			return true
		default:
		}
		st, err := c.Client.Status(ctx)
		return err == nil && (st.AgentPID == cmd.Process.Pid || st.AgentPID == 0)
	})
	switch {
	case exited:
		return true, fmt.Errorf("agent exited at start (%v); see %s", exitErr, logPath)
	case answered:
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	// A VPN that runs the agent as its child (not exec'ing it) never
	// matches: an agent answering now is the one it started.
	if _, err := c.Client.Status(ctx); err == nil {
		return false, nil
	}
	return false, fmt.Errorf("agent did not answer within %s; see %s", Started.Budget.Round(time.Second), logPath)
}
