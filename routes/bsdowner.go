package routes

// Ownership on macOS. Our marker, RTF_PROTO1, is not ours alone: NetBird
// marks its routes with it too (and flushes every RTF_PROTO1 host route
// at start), so "carries the marker" would make each program delete the
// other's routes. A marked route is ClearPath's only when the journal of
// the session names it (every route we add is journaled before it is
// made), or when it lies on a utun carrying a route the journal names.
//
// For the integrator: this is the only engine hook of the macOS backend.
// NewEngine hands the System its journal path (journalScoped); the
// engine's own ownership logic (OwnedItems on Protocol) is unchanged,
// the System simply reports Protocol 197 for ours only.

import (
	"errors"
	"net/netip"
	"os"
)

// journalScoped is a System whose ownership marker other programs may set
// too: it counts as ours only what the journal at path names.
type journalScoped interface {
	scopeToJournal(path string)
}

func (s *bsdSystem) scopeToJournal(path string) { s.journal = path }

// claim clears Protocol on the marked routes of snap that are not ours
// (their "1" flag stays visible). Without a journal path (a System no
// engine uses: doctor, tests) every marked route counts, as before.
func (s *bsdSystem) claim(snap *Snapshot) {
	if s.journal == "" {
		return
	}
	recs, err := ReadJournal(s.journal)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("route ownership: journal unreadable, no RTF_PROTO1 route counts as ours", "journal", s.journal, "err", err)
	}
	journaled := map[netip.Prefix][]Route{}
	for _, r := range recs {
		if r.Phase == "intent" && r.Change != nil && r.Change.Op == OpAddRoute && r.Change.Route != nil && r.Change.Route.Protocol == Protocol {
			jr := *r.Change.Route
			journaled[jr.Dst.Masked()] = append(journaled[jr.Dst.Masked()], jr)
		}
	}
	utun := map[string]bool{}
	for _, l := range snap.Links {
		if l.Type == "utun" {
			utun[l.Name] = true
		}
	}
	ourDev := map[string]bool{}
	for _, rs := range journaled {
		for _, r := range rs {
			if utun[r.Device] {
				ourDev[r.Device] = true
			}
		}
	}
	for i := range snap.Routes {
		r := &snap.Routes[i]
		if r.Protocol != Protocol || ourDev[r.Device] {
			continue
		}
		mine := false
		for _, j := range journaled[r.Dst] {
			if bsdSameRoute(j, *r) {
				mine = true
				break
			}
		}
		if !mine {
			r.Protocol = 0
		}
	}
}
