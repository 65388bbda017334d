package agent

import (
	"fmt"
	"time"

	"github.com/clearpath-vpn/clearpath/client/splitdns"
	"github.com/clearpath-vpn/clearpath/routes"
)

// Recovery is what RecoverOffline did.
type Recovery struct {
	// DNS is what was done to the resolver; DNSErr why it could not be
	// put back (the routes were restored all the same).
	DNS    splitdns.Result
	DNSErr error
	// Clean: there was no route journal and no route or rule of ours:
	// no session was left, Routes is nil.
	Clean  bool
	Routes *routes.Report
}

// RecoverOffline is what `vpn down` without an agent and `vpn routes
// restore` do, as the agent does at its start: with the state dir's lock
// held (ErrRunning, wrapped, when an agent holds it for more than a few
// seconds), the resolver is put back from the DNS journal, then the route
// journal is replayed in reverse and every route and rule of ours swept.
// sys is the live system (routes.NewSystem) outside tests.
func RecoverOffline(dir string, sys routes.System) (*Recovery, error) {
	unlock, err := Lock(dir, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer unlock()
	rec := &Recovery{}
	rec.DNS, rec.DNSErr = splitdns.Restore(dir)
	eng := routes.NewEngine(sys, dir)
	if !eng.Active() {
		if rs, rules, err := eng.Owned(); err == nil && len(rs)+len(rules) == 0 {
			rec.Clean = true
			return rec, nil
		}
	}
	if rec.Routes, err = eng.Recover(); err != nil {
		return rec, fmt.Errorf("restore the routes of a crashed session: %w", err)
	}
	return rec, nil
}

// DNSNotes says what happened to the resolver: a warning ("" none: it
// could not be put back, or something else changed it since) or what was
// put back ("" nothing).
func (r *Recovery) DNSNotes() (warning, done string) {
	switch {
	case r.DNSErr != nil:
		return "resolv.conf: " + r.DNSErr.Error(), ""
	case r.DNS.Changed:
		return r.DNS.Message(), ""
	case r.DNS.Restored:
		return "", r.DNS.Message()
	}
	return "", ""
}
