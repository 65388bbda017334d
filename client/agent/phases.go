package agent

import (
	"log/slog"
	"time"
)

// phases times the steps of a connect, so the log says where `vpn up`
// spends its time (registration, checks, device, routes, probe).
type phases struct {
	last  time.Time
	attrs []any
}

func newPhases() *phases { return &phases{last: time.Now()} }

// mark ends the step called name.
func (p *phases) mark(name string) {
	now := time.Now()
	p.attrs = append(p.attrs, name+"_ms", float64(now.Sub(p.last).Microseconds())/1000)
	p.last = now
}

// add records a step timed elsewhere (the tunnel's own steps).
func (p *phases) add(name string, d time.Duration) {
	p.attrs = append(p.attrs, name+"_ms", float64(d.Microseconds())/1000)
}

func (p *phases) log(l *slog.Logger) { l.Info("connect phases", p.attrs...) }
