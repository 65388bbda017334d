// Package splitdns is the client's split DNS without systemd-resolved: a
// stub resolver in the agent on a loopback address (StubAddr) answers the
// gateway's routing domains from the tunnel's servers and forwards every
// other name to the servers resolv.conf named before; resolv.conf points
// at the stub while the tunnel is up.
//
// Every change to resolv.conf is journaled (JournalFile in the agent's
// state dir, fsynced) before it is made, and undone by Restore: on `vpn
// down`, at the next agent start after a crash, by `vpn routes restore`.
// The previous file comes back byte for byte only if the file is still
// exactly what we wrote; if anyone changed it since, nothing is
// overwritten, the previous content is kept beside the journal
// (SavedFile) and the user is told.
package splitdns

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clearpath-vpn/clearpath/client/statedir"
)

// StubAddr is where the agent's stub resolver listens (UDP and TCP port
// 53): a loopback address of its own (all of 127/8 is local on Linux),
// clear of systemd-resolved's 127.0.0.53/54 and dnsmasq's 127.0.0.1.
var StubAddr = netip.MustParseAddr("127.0.74.11")

// JournalFile is the DNS journal in the state dir, beside the route
// journal; SavedFile keeps the pre-VPN resolv.conf when someone else
// changed the file while the tunnel was up.
const (
	JournalFile = "dns.journal"
	SavedFile   = "resolv.conf.before-vpn"
)

// DefaultResolvConf is the resolver file the agent points at the stub.
const DefaultResolvConf = "/etc/resolv.conf"

// ModeResolved marks a journal of systemd-resolved link settings.
const ModeResolved = "resolved"

// Journal is the record written before resolv.conf (or, with Mode
// "resolved", a link's systemd-resolved settings) is changed.
type Journal struct {
	// Mode: "" resolv.conf, ModeResolved a link's resolved settings
	// (Link, Index).
	Mode  string `json:"mode,omitempty"`
	Link  string `json:"link,omitempty"`
	Index int    `json:"index,omitempty"`
	// Path of the resolver file (followed if a symlink: the file is
	// written in place, so a bind mount or a resolvconf symlink stays).
	Path string `json:"path"`
	// Before is the whole file as it was; Ours what we wrote.
	Before []byte `json:"before"`
	Ours   []byte `json:"ours"`
	// Missing: there was no file before (restore removes ours).
	Missing bool `json:"missing,omitempty"`
	// Servers, Domains and All: what a resolved link was given (for
	// `vpn routes dns`).
	Servers []string  `json:"servers,omitempty"`
	Domains []string  `json:"domains,omitempty"`
	All     bool      `json:"all,omitempty"`
	Stub    string    `json:"stub"`
	PID     int       `json:"pid"`
	At      time.Time `json:"at"`
}

// Content is the resolv.conf pointing at stub: the previous file's search,
// domain and options lines are kept.
func Content(before []byte, stub netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by ClearPath (vpn up): split DNS through the agent's stub resolver.\n")
	b.WriteString("# `vpn down` puts the previous file back; do not edit while the tunnel is up.\n")
	fmt.Fprintf(&b, "nameserver %s\n", stub)
	sc := bufio.NewScanner(bytes.NewReader(before))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	return b.Bytes()
}

// Nameservers are the nameserver addresses of a resolv.conf, without the
// stub's own address (a leftover pointing at the stub would loop).
func Nameservers(conf []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.WithZone("") != StubAddr {
				out = append(out, a)
			}
		}
	}
	return out
}

// PointsAtStub says whether a resolv.conf names our stub as a nameserver.
func PointsAtStub(conf []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" && f[1] == StubAddr.String() {
			return true
		}
	}
	return false
}

// Point journals the resolver file at path, then rewrites it to name only
// the stub. It returns the file's previous content (whose nameservers the
// stub forwards to). A journal left by an earlier session must have been
// restored first (Restore).
func Point(stateDir, path string, stub netip.Addr) (before []byte, err error) {
	if _, err := os.Lstat(filepath.Join(stateDir, JournalFile)); err == nil {
		return nil, fmt.Errorf("a DNS journal of an earlier session is still in %s: run `vpn routes restore`", stateDir)
	}
	j := Journal{Path: path, Stub: stub.String(), PID: os.Getpid(), At: time.Now().UTC()}
	before, err = os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		j.Missing = true
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	j.Before = before
	j.Ours = Content(before, stub)
	if err := writeJournal(stateDir, j); err != nil {
		return nil, err
	}
	if err := writeInPlace(path, j.Ours); err != nil {
		// Nothing or a torn file: put the old one back now.
		if _, rerr := Restore(stateDir); rerr != nil {
			err = fmt.Errorf("%w (and undoing: %v)", err, rerr)
		}
		return nil, fmt.Errorf("point %s at the stub resolver: %w", path, err)
	}
	return before, nil
}

func writeJournal(dir string, j Journal) error { return writeJSONJournal(dir, JournalFile, j) }

// writeJSONJournal writes v as the journal name in dir: a synced temp
// file renamed into place, then the directory synced.
func writeJSONJournal(dir, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := name + ".tmp"
	f, err := statedir.OpenFile(dir, tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("DNS journal: %w", err)
	}
	if _, err = f.Write(append(b, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(filepath.Join(dir, tmp), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(filepath.Join(dir, tmp))
		return fmt.Errorf("DNS journal: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeInPlace replaces the content of path without replacing the file:
// a rename would fail on a bind-mounted resolv.conf (containers, `ip netns
// exec`) and would turn a resolvconf symlink into a plain file.
func writeInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Result says what Restore did.
type Result struct {
	// Journaled: there was a journal to act on.
	Journaled bool
	Path      string
	// Restored: the previous file is back byte for byte (or was never
	// changed: a crash between the journal and the write).
	Restored bool
	// Changed: someone changed the file since we wrote it; it was left
	// as it is and the previous content saved to SavedAs.
	Changed bool
	SavedAs string
	// Resolver: what was done to the /etc/resolver files (macOS).
	Resolver ResolverResult
}

// Message is a sentence for the user, "" when there was nothing to do.
func (r Result) Message() string {
	var parts []string
	if m := r.resolvMessage(); m != "" {
		parts = append(parts, m)
	}
	if n := len(r.Resolver.Removed); n > 0 {
		parts = append(parts, fmt.Sprintf("removed %d resolver file(s) of ours: %s", n, strings.Join(r.Resolver.Removed, ", ")))
	}
	if len(r.Resolver.Kept) > 0 {
		parts = append(parts, fmt.Sprintf("%s changed by something else while the tunnel was up: left as it is, not removed", strings.Join(r.Resolver.Kept, ", ")))
	}
	return strings.Join(parts, "; ")
}

func (r Result) resolvMessage() string {
	switch {
	case !r.Journaled || r.Path == "":
		return ""
	case r.Changed && r.SavedAs == "":
		return fmt.Sprintf("%s was changed by something else while the tunnel was up: left as it is, not overwritten (there was no such file before `vpn up`)", r.Path)
	case r.Changed:
		return fmt.Sprintf("%s was changed by something else while the tunnel was up: left as it is, not overwritten; the file from before `vpn up` is in %s (copy it back if you want it)", r.Path, r.SavedAs)
	case r.Restored && strings.HasPrefix(r.Path, "systemd-resolved"):
		return fmt.Sprintf("%s: DNS settings reverted", r.Path)
	case r.Restored:
		return fmt.Sprintf("%s restored as it was before `vpn up`", r.Path)
	}
	return ""
}

// Restore undoes the journaled resolv.conf change, if any: the file comes
// back byte for byte when it still holds what we wrote (or a torn prefix
// of it: a crash mid-write). The journal is removed once acted on.
//
// It also replays the /etc/resolver journal (macOS, resolverdir.go):
// Resolver says what that did.
func Restore(stateDir string) (Result, error) {
	rr, rerr := RestoreResolverDir(stateDir)
	res, err := restoreResolvConf(stateDir)
	res.Resolver = rr
	// Callers tell warnings (Changed) from done (Restored) by these; a
	// session has one journal or the other (macOS: resolver files).
	if res.Path == "" && rr.Journaled {
		res.Journaled = true
		res.Changed = len(rr.Kept) > 0
		res.Restored = !res.Changed
	}
	if rerr != nil && err == nil {
		err = rerr
	}
	return res, err
}

func restoreResolvConf(stateDir string) (Result, error) {
	jp := filepath.Join(stateDir, JournalFile)
	b, err := statedir.ReadFile(jp)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("read the DNS journal: %w", err)
	}
	var j Journal
	jerr := json.Unmarshal(b, &j)
	if jerr == nil && j.Mode == ModeResolved {
		if err := revertResolved(j); err != nil {
			return Result{Journaled: true, Path: "systemd-resolved link " + j.Link}, err
		}
		os.Remove(jp)
		return Result{Journaled: true, Restored: true, Path: "systemd-resolved link " + j.Link}, nil
	}
	if jerr != nil || j.Path == "" || !filepath.IsAbs(j.Path) {
		// A torn journal: the write was never made (the journal is
		// synced before the change).
		os.Remove(jp)
		return Result{Journaled: true}, nil
	}
	res := Result{Journaled: true, Path: j.Path}
	cur, err := os.ReadFile(j.Path)
	missing := errors.Is(err, os.ErrNotExist)
	if err != nil && !missing {
		return res, fmt.Errorf("read %s: %w", j.Path, err)
	}
	switch {
	case missing && j.Missing, !missing && !j.Missing && bytes.Equal(cur, j.Before):
		res.Restored = true // never changed, or already back
	case !missing && (bytes.Equal(cur, j.Ours) || len(cur) < len(j.Ours) && bytes.HasPrefix(j.Ours, cur)):
		if j.Missing {
			err = os.Remove(j.Path)
		} else {
			err = writeInPlace(j.Path, j.Before)
		}
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", j.Path, err)
		}
		res.Restored = true
	default:
		res.Changed = true
		if !j.Missing {
			f, err := statedir.OpenFile(stateDir, SavedFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return res, fmt.Errorf("keep the previous %s: %w", j.Path, err)
			}
			_, err = f.Write(j.Before)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return res, fmt.Errorf("keep the previous %s: %w", j.Path, err)
			}
			res.SavedAs = filepath.Join(stateDir, SavedFile)
		}
	}
	if err := os.Remove(jp); err != nil {
		return res, fmt.Errorf("remove the DNS journal: %w", err)
	}
	return res, nil
}

// Journals are the journals a session that has not restored yet left in
// the state dir; nil where there is none.
type Journals struct {
	// DNS is the resolv.conf or systemd-resolved journal (JournalFile).
	DNS *Journal
	// Resolver is the /etc/resolver files' journal (ResolverJournalFile).
	Resolver *ResolverJournal
}

// Pending reads both journals of a session that has not restored yet:
// doctor tells a live session from a dead one's leftovers with them, and
// `vpn routes diff` compares them with the machine. A journal that cannot
// be read or parsed stays nil and its error, naming it, is returned with
// the other one.
func Pending(stateDir string) (Journals, error) {
	var out Journals
	var j Journal
	found, err := readJournal(stateDir, JournalFile, &j)
	if err != nil {
		err = fmt.Errorf("DNS journal: %w", err)
	} else if found {
		out.DNS = &j
	}
	var rj ResolverJournal
	rfound, rerr := readJournal(stateDir, ResolverJournalFile, &rj)
	if rerr == nil && rfound && rj.Dir == "" {
		rerr = errors.New("torn: no directory")
	}
	if rerr != nil {
		rerr = fmt.Errorf("resolver journal: %w", rerr)
	} else if rfound {
		out.Resolver = &rj
	}
	return out, errors.Join(err, rerr)
}

// readJournal reads the JSON journal name in stateDir into v; found is
// false when there is none.
func readJournal(stateDir, name string, v any) (found bool, err error) {
	b, err := statedir.ReadFile(filepath.Join(stateDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("torn or bad: %w", err)
	}
	return true, nil
}

// Repoint follows a network change during a session: when something (a
// network manager, dhclient) rewrote the resolver file with the new
// network's resolvers, that file becomes the journal's "before" (what
// `vpn down` puts back: the current network's, not the stale one) and the
// file is pointed at the stub again, journal first. It returns the new
// file's content and changed=true; a file still ours, or one that names
// the stub anyway (a user's edit), is left alone (changed=false).
func Repoint(stateDir string, stub netip.Addr) (before []byte, changed bool, err error) {
	var j Journal
	found, err := readJournal(stateDir, JournalFile, &j)
	if err != nil {
		return nil, false, fmt.Errorf("DNS journal: %w", err)
	}
	if !found || j.Mode != "" {
		return nil, false, nil
	}
	cur, err := os.ReadFile(j.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil // removed: nothing to follow
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", j.Path, err)
	}
	if bytes.Equal(cur, j.Ours) || PointsAtStub(cur) || len(Nameservers(cur)) == 0 {
		return nil, false, nil
	}
	nj := Journal{Path: j.Path, Before: cur, Ours: Content(cur, stub), Stub: stub.String(), PID: os.Getpid(), At: time.Now().UTC()}
	if err := writeJournal(stateDir, nj); err != nil {
		return nil, false, err
	}
	if err := writeInPlace(j.Path, nj.Ours); err != nil {
		return nil, false, fmt.Errorf("point %s at the stub resolver again: %w", j.Path, err)
	}
	return cur, true, nil
}
