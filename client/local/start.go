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
// state dir) in this process's network namespace, and returns once it
// says on the readiness pipe (ready.go) that it answers. It needs root:
// ErrStartNeedsRoot otherwise. An agent that cannot run fails Start at
// once with its own reason.
//
// An agent that has just answered a down may still hold the state dir's
// lock for a moment, and one started then exits at once (BUSY); so may
// the loser of two starts at the same time (the CLI and the tray). Start
// then asks again, and starts another when still nothing answers, up to
// StartAttempts times.
func (c *Client) Start(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return ErrStartNeedsRoot
	}
	wait := Started.First * 5 // 25 ms, then 50, 100, 200: the old agent's exit
	for attempt := 1; ; attempt++ {
		retry, err := c.startOnce(ctx)
		if err == nil || !retry || attempt == StartAttempts {
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

// startOnce starts one agent and waits until it is ready; retry says it
// exited at start for a reason another attempt may not meet (another
// agent held the lock, or it said nothing).
func (c *Client) startOnce(ctx context.Context) (retry bool, err error) {
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
	pr, pw, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("start agent: readiness pipe: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(exe, "agent", "--state-dir", c.StateDir, "--"+ReadyFlag, "3")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw} // fd 3 in the agent
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close() // the agent's is now the only write end
	if err != nil {
		return false, fmt.Errorf("start agent %s: %w", exe, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	type said struct {
		what   readiness
		reason string
	}
	heard := make(chan said, 1)
	go func() {
		w, r := readReady(pr)
		heard <- said{w, r}
	}()
	budget := time.NewTimer(Started.Budget)
	defer budget.Stop()
	var s said
	select {
	case s = <-heard:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-budget.C:
		return false, c.noAnswer(ctx, logPath)
	}
	switch s.what {
	case saidReady:
		return false, nil
	case saidBusy, saidError:
		// It exits right after saying so: reap it, briefly.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return s.what == saidBusy, fmt.Errorf("agent exited at start: %s; see %s", s.reason, logPath)
	}
	// The pipe closed unsaid: the agent died at start (or predates the
	// pipe, or a wrapper closed it). Its exit says which; one that runs on
	// is asked over the socket as before the pipe.
	select {
	case exitErr := <-done:
		return true, fmt.Errorf("agent exited at start (%v); see %s", exitErr, logPath)
	case <-time.After(100 * time.Millisecond):
	}
	var exitErr error
	exited := false
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
	return false, c.noAnswer(ctx, logPath)
}

// noAnswer is the end of a start that never said it was ready: a VPN
// that runs the agent as its child (not exec'ing it) never matches its
// pid, so an agent answering now is the one it started.
func (c *Client) noAnswer(ctx context.Context, logPath string) error {
	if _, err := c.Client.Status(ctx); err == nil {
		return nil
	}
	return fmt.Errorf("agent did not answer within %s; see %s", Started.Budget.Round(time.Second), logPath)
}
