package tray

import (
	"context"
	"strings"
	"testing"
)

// "Restore routes" asks the agent over the control socket, as the tray's
// other actions do: with no agent running the tray starts one (its start
// restores) and asks it; the outcome is notified. While connected the
// item is disabled and the agent refuses anyway (its session's routes are
// Disconnect's): the session stays up and nothing is restored.
func TestRestoreRoutesAsksTheAgent(t *testing.T) {
	r := newRig(t, Settings{})
	ctx := context.Background()
	r.agent.Leftovers = 3
	if err := r.ctl.Restore(ctx); err != nil {
		t.Fatalf("restore: %v", err)
	}
	r.mu.Lock()
	starts := r.starts
	r.mu.Unlock()
	if starts != 1 || r.agent.RestoreCalls() != 1 {
		t.Fatalf("agent started %d times, %d restores; want 1 and 1", starts, r.agent.RestoreCalls())
	}
	notes := r.notifications()
	if len(notes) != 1 || notes[0].Kind != NoteRestore || !strings.Contains(notes[0].Body, "3 leftovers removed") {
		t.Fatalf("notifications %+v", notes)
	}
	v := r.ctl.Refresh(ctx)
	if it, ok := Find(Menu(v), ItemRestore); !ok || it.Disabled || it.Label != "Restore routes" {
		t.Errorf("disconnected: restore item %+v %v", it, ok)
	}

	if err := r.ctl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	v = r.ctl.Refresh(ctx)
	if it, _ := Find(Menu(v), ItemRestore); !it.Disabled {
		t.Error("connected: Restore routes is enabled")
	}
	err := r.ctl.Restore(ctx) // a click that raced the menu update
	if err == nil || !strings.Contains(err.Error(), "Disconnect restores") {
		t.Errorf("restore while connected: %v", err)
	}
	if r.agent.RestoreCalls() != 1 || r.ctl.Refresh(ctx).State != Connected {
		t.Errorf("a refused restore did something: %d restores, state %s", r.agent.RestoreCalls(), r.ctl.View().State)
	}
	if r.ctl.View().Busy != Idle {
		t.Error("still busy after the refusal")
	}
}

// Without an agent and without the right to start one, the tray says why
// nothing can hold routes and how to restore what a crash left.
func TestRestoreRoutesWithoutAnAgent(t *testing.T) {
	r := newRig(t, Settings{})
	r.ctl.d.StartAgent = nil
	err := r.ctl.Restore(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sudo vpn routes restore") {
		t.Fatalf("restore with no agent: %v", err)
	}
	if len(r.notifications()) != 0 {
		t.Errorf("notified %+v", r.notifications())
	}
}
