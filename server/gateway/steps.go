package gateway

import (
	"log/slog"
	"sync"
)

// steps is the gateway's start (and a reload's device changes) as a
// sequence: each step that changed something registers its undo, and
// unwind runs the undos newest first, exactly once. A start that fails at
// step k undoes steps k-1..1; a clean stop is the same unwind.
type steps struct {
	log  *slog.Logger
	hook func(string) // tests: a kill point after each step and before each undo
	mu   sync.Mutex
	undo []undoStep
	done []string // names of the steps taken, in order (tests)
}

type undoStep struct {
	name string
	f    func()
}

func newSteps(log *slog.Logger, hook func(string)) *steps {
	if log == nil {
		log = slog.Default()
	}
	return &steps{log: log, hook: hook}
}

// did records that step name was taken, with its undo (nil: nothing to undo).
func (s *steps) did(name string, undo func()) {
	s.mu.Lock()
	if undo != nil {
		s.undo = append(s.undo, undoStep{name, undo})
	}
	s.done = append(s.done, name)
	s.mu.Unlock()
	if s.hook != nil {
		s.hook("start:" + name)
	}
}

// unwind undoes every step taken so far, newest first.
func (s *steps) unwind() {
	for {
		s.mu.Lock()
		if len(s.undo) == 0 {
			s.mu.Unlock()
			return
		}
		u := s.undo[len(s.undo)-1]
		s.undo = s.undo[:len(s.undo)-1]
		s.mu.Unlock()
		if s.hook != nil {
			s.hook("undo:" + u.name)
		}
		u.f()
	}
}

// pending returns the names of the undos still registered, newest first.
func (s *steps) pending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.undo))
	for i := len(s.undo) - 1; i >= 0; i-- {
		out = append(out, s.undo[i].name)
	}
	return out
}
