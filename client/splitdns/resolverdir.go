package splitdns

import (
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

// macOS split DNS: one file per routing domain in /etc/resolver (see
// resolver(5)) naming the tunnel's servers; mDNSResponder sends names
// under the domain there and every other name where it did before. The
// directory is a parameter so the code runs (and is tested) anywhere.
//
// The files to write are journaled (ResolverJournalFile, fsynced) before
// any is created; a file that exists is never overwritten (another VPN's
// or the admin's: that domain is skipped and reported). Restore removes
// only files whose content is still exactly ours.

// DefaultResolverDir is macOS's per-domain resolver directory.
const DefaultResolverDir = "/etc/resolver"

// ResolverJournalFile is the journal of /etc/resolver files in the state
// dir, beside JournalFile.
const ResolverJournalFile = "resolver.journal"

// resolverMarker starts every file we write: doctor finds ours by it.
const resolverMarker = "# Written by ClearPath (vpn up): split DNS for "

// ResolverJournal records the files written into Dir.
type ResolverJournal struct {
	Dir string `json:"dir"`
	// DirCreated: Dir did not exist; restore removes it if left empty.
	DirCreated bool           `json:"dir_created,omitempty"`
	Files      []ResolverFile `json:"files"`
	PID        int            `json:"pid"`
	At         time.Time      `json:"at"`
}

// ResolverFile is one domain's file and what we put in it.
type ResolverFile struct {
	Domain  string `json:"domain"`
	Content []byte `json:"content"`
}

// ResolverContent is the resolver(5) file for domain.
func ResolverContent(domain string, servers []netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString(resolverMarker + domain + "; `vpn down` removes it.\n")
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.Bytes()
}

// validResolverDomain refuses a name that is not a plain file name.
func validResolverDomain(d string) error {
	if d == "" || d == "." || d == ".." || strings.ContainsAny(d, "/\\\x00") || strings.HasPrefix(d, ".") {
		return fmt.Errorf("routing domain %q cannot name a file in the resolver directory", d)
	}
	return nil
}

// PointResolverDir journals, then writes dir/<domain> for each routing
// domain. skipped lists domains whose file already exists (not ours: left
// alone). A journal left by an earlier session must be restored first.
func PointResolverDir(stateDir, dir string, servers []netip.Addr, domains []string) (skipped []string, err error) {
	if _, err := os.Lstat(filepath.Join(stateDir, ResolverJournalFile)); err == nil {
		return nil, fmt.Errorf("a resolver journal of an earlier session is still in %s: run `vpn routes restore`", stateDir)
	}
	j := ResolverJournal{Dir: dir, PID: os.Getpid(), At: time.Now().UTC()}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		j.DirCreated = true
	}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if err := validResolverDomain(d); err != nil {
			return nil, err
		}
		if _, err := os.Lstat(filepath.Join(dir, d)); err == nil {
			skipped = append(skipped, d)
			continue
		}
		j.Files = append(j.Files, ResolverFile{Domain: d, Content: ResolverContent(d, servers)})
	}
	if len(j.Files) == 0 {
		return skipped, nil
	}
	if err := writeJSONJournal(stateDir, ResolverJournalFile, j); err != nil {
		return nil, err
	}
	if j.DirCreated {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			RestoreResolverDir(stateDir)
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	for _, f := range j.Files {
		// O_EXCL: a file that appeared since the check is not ours either.
		fh, err := os.OpenFile(filepath.Join(dir, f.Domain), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = fh.Write(f.Content)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			if _, rerr := RestoreResolverDir(stateDir); rerr != nil {
				err = fmt.Errorf("%w (and undoing: %v)", err, rerr)
			}
			return nil, fmt.Errorf("write %s: %w", filepath.Join(dir, f.Domain), err)
		}
	}
	return skipped, nil
}

// ResolverResult says what RestoreResolverDir did.
type ResolverResult struct {
	Journaled bool
	// Removed: our files taken away; Kept: files changed since we wrote
	// them (or replaced), left as they are.
	Removed, Kept []string
}

// RestoreResolverDir removes the journaled files that still hold exactly
// what we wrote (or a torn prefix of it), then the journal.
func RestoreResolverDir(stateDir string) (ResolverResult, error) {
	jp := filepath.Join(stateDir, ResolverJournalFile)
	b, err := statedir.ReadFile(jp)
	if errors.Is(err, os.ErrNotExist) {
		return ResolverResult{}, nil
	}
	if err != nil {
		return ResolverResult{}, fmt.Errorf("read the resolver journal: %w", err)
	}
	var j ResolverJournal
	if json.Unmarshal(b, &j) != nil || j.Dir == "" || !filepath.IsAbs(j.Dir) {
		os.Remove(jp) // torn: synced before any file was written
		return ResolverResult{Journaled: true}, nil
	}
	res := ResolverResult{Journaled: true}
	for _, f := range j.Files {
		p := filepath.Join(j.Dir, f.Domain)
		cur, err := os.ReadFile(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return res, fmt.Errorf("read %s: %w", p, err)
		case bytes.Equal(cur, f.Content) || len(cur) < len(f.Content) && bytes.HasPrefix(f.Content, cur):
			if err := os.Remove(p); err != nil {
				return res, fmt.Errorf("remove %s: %w", p, err)
			}
			res.Removed = append(res.Removed, p)
		default:
			res.Kept = append(res.Kept, p)
		}
	}
	if j.DirCreated {
		os.Remove(j.Dir) // only if empty
	}
	if err := os.Remove(jp); err != nil {
		return res, fmt.Errorf("remove the resolver journal: %w", err)
	}
	return res, nil
}

// ourResolverFile says whether b is exactly a file we write for name:
// our header, then only nameserver lines.
func ourResolverFile(name string, b []byte) bool {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != strings.TrimSuffix(string(ResolverContent(name, nil)), "\n") {
		return false
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != "nameserver" {
			return false
		}
		if _, err := netip.ParseAddr(f[1]); err != nil {
			return false
		}
	}
	return true
}

// RemoveOurResolverFiles removes the files in dir that are exactly ours
// (OurResolverFiles): a dead session's, when no journal says more.
func RemoveOurResolverFiles(dir string) (removed []string, err error) {
	for _, p := range OurResolverFiles(dir) {
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("remove %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// OurResolverFiles lists the files in dir that start with our marker: a
// session's files, or a dead one's when no agent runs.
func OurResolverFiles(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err == nil && ourResolverFile(e.Name(), b) {
			out = append(out, p)
		}
	}
	return out
}
