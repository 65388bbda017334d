package splitdns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Diff is what the DNS journal holds against the machine now (`vpn routes
// dns`): the lines from before `vpn up` removed ("- ") and added ("+ ").
type Diff struct {
	// What: the file or link the journal is about.
	What string
	// Lines: "- line" (in the file before, not now), "+ line" (now, not
	// before); for a resolved link, "+ " each setting ClearPath made.
	Lines []string
	// State is a sentence on where the change stands.
	State string
	// Differs: the machine is not as it was before `vpn up`.
	Differs bool
}

// DiffFile compares a resolv.conf journal with the file now (missing: it
// does not exist).
func DiffFile(j *Journal, now []byte, missing bool) Diff {
	d := Diff{What: j.Path}
	before := j.Before
	if j.Missing {
		before = nil
	}
	d.Lines = lineDiff(splitLines(before), splitLines(now))
	switch {
	case missing && j.Missing, !missing && !j.Missing && bytes.Equal(now, j.Before):
		d.State = "as it was before `vpn up` (nothing to restore)"
	case missing:
		d.State = "removed since `vpn up` (restore keeps the file from before in the state dir)"
		d.Differs = true
	case bytes.Equal(now, j.Ours):
		d.State = fmt.Sprintf("what ClearPath wrote at %s (pid %d): restore puts the previous file back byte for byte", j.At.Format("2006-01-02 15:04:05Z07:00"), j.PID)
		d.Differs = true
	default:
		d.State = "changed by something else since ClearPath wrote it: restore leaves it and keeps the file from before in the state dir"
		d.Differs = true
	}
	if j.Missing && !missing {
		d.Lines = append([]string{"(no such file before `vpn up`)"}, d.Lines...)
	}
	return d
}

// DiffLink describes a journaled systemd-resolved link: the settings
// ClearPath made, and whether they are still there (linkNow: the name of
// the link of that index now, "" none).
func DiffLink(j *Journal, linkNow string) Diff {
	d := Diff{What: fmt.Sprintf("systemd-resolved link %s (ifindex %d)", j.Link, j.Index)}
	if len(j.Servers) > 0 {
		d.Lines = append(d.Lines, "+ DNS "+strings.Join(j.Servers, " "))
	}
	var doms []string
	for _, x := range j.Domains {
		doms = append(doms, "~"+x)
	}
	if j.All {
		doms = append(doms, "~.")
	}
	if len(doms) > 0 {
		d.Lines = append(d.Lines, "+ Domains "+strings.Join(doms, " "))
	}
	if j.All {
		d.Lines = append(d.Lines, "+ DefaultRoute yes")
	}
	if linkNow == j.Link {
		d.State = "set on the link now: restore reverts them (RevertLink)"
		d.Differs = true
	} else {
		d.State = "the link is gone and its settings with it: nothing left to revert"
	}
	return d
}

func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// lineDiff is a longest-common-subsequence line diff (resolver files are
// a few lines): removed lines first at each point, then added ones.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for k := m - 1; k >= 0; k-- {
			if a[i] == b[k] {
				lcs[i][k] = lcs[i+1][k+1] + 1
			} else {
				lcs[i][k] = max(lcs[i+1][k], lcs[i][k+1])
			}
		}
	}
	var out []string
	i, k := 0, 0
	for i < n || k < m {
		switch {
		case i < n && k < m && a[i] == b[k]:
			i, k = i+1, k+1
		case k == m || i < n && lcs[i+1][k] >= lcs[i][k+1]:
			out = append(out, "- "+a[i])
			i++
		default:
			out = append(out, "+ "+b[k])
			k++
		}
	}
	return out
}

// DiffResolverDir compares the resolver journal with the files now: "+ "
// lines of each file we wrote that is still ours, and a state per file.
func DiffResolverDir(j *ResolverJournal) []Diff {
	var out []Diff
	for _, f := range j.Files {
		p := filepath.Join(j.Dir, f.Domain)
		d := Diff{What: p}
		cur, err := os.ReadFile(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			d.State = "gone (nothing to remove)"
		case err != nil:
			d.State = "unreadable: " + err.Error()
			d.Differs = true
		case bytes.Equal(cur, f.Content):
			d.State = "what ClearPath wrote (no file before): restore removes it"
			d.Lines = lineDiff(nil, splitLines(cur))
			d.Differs = true
		default:
			d.State = "changed by something else since ClearPath wrote it: restore leaves it"
			d.Lines = lineDiff(splitLines(f.Content), splitLines(cur))
			d.Differs = true
		}
		out = append(out, d)
	}
	return out
}
